"""partition watermarks; timers fire once the watermark passes their release time

Timers used to fire by the wall clock, so a due timer could fire while the event that should
have cancelled it (the buyer's order) still waited unconsumed in clm.events. Each partition
now has a watermark (everything appended before it is folded), and a timer fires only once
every partition's watermark has passed its ``release_at``: its due time, or a grace after
its trigger arrived when that trigger was already late.

Existing timers are released at their due time. Until a consumer has established a
watermark for every partition of clm.events (within a second of its start), no timer fires.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "partitions",
        sa.Column("topic", sa.Text(), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("topic", "partition", name=op.f("pk_partitions")),
        schema="engine",
    )
    op.add_column(
        "timers", sa.Column("release_at", sa.DateTime(timezone=True), nullable=True), schema="engine"
    )
    op.execute("UPDATE engine.timers SET release_at = due_at")
    op.alter_column("timers", "release_at", nullable=False, schema="engine")
    op.drop_index("ix_timers_due_at", table_name="timers", schema="engine")
    op.create_index("ix_timers_release_at", "timers", ["release_at"], unique=False, schema="engine")


def downgrade() -> None:
    op.drop_index("ix_timers_release_at", table_name="timers", schema="engine")
    op.create_index("ix_timers_due_at", "timers", ["due_at"], unique=False, schema="engine")
    op.drop_column("timers", "release_at", schema="engine")
    op.drop_table("partitions", schema="engine")
