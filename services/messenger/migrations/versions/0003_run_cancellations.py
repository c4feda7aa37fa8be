"""run cancellations: deliveries know their run, cancelled runs are remembered

Adds ``deliveries.run_id`` (null on the rows stored before: the actions of older engines named
no run, so a cancellation cannot reach them) with a partial index, ``deliveries.replayed_at``
(a replay overrides a cancellation received before it), and ``cancelled_runs``, one row per
run the engine cancelled (``ActionCancelV1`` on ``clm.actions``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "messenger"


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("run_id", sa.Text(), nullable=True), schema=S)
    op.add_column(
        "deliveries",
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=True),
        schema=S,
    )
    op.create_index(
        "ix_deliveries_run_id",
        "deliveries",
        ["run_id"],
        schema=S,
        postgresql_where=sa.text("run_id IS NOT NULL"),
    )
    op.create_table(
        "cancelled_runs",
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("cancel_id", sa.Text(), nullable=False),
        sa.Column("customer_key", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_cancelled_runs")),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("cancelled_runs", schema=S)
    op.drop_index("ix_deliveries_run_id", table_name="deliveries", schema=S)
    op.drop_column("deliveries", "replayed_at", schema=S)
    op.drop_column("deliveries", "run_id", schema=S)
