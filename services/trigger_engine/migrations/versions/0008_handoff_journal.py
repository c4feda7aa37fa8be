"""the hand-off journal: hand-off records kept until their partition has consumed them

A hand-off record (a forwarded event, a merge request, a state transfer) is produced before
the checkpoint that covers the event which caused it, so a crash replays that event and
produces it again. A broker that loses data (the embedded one keeps everything in memory)
loses it for good, though: the source partition has moved past the event. Each checkpoint
now also keeps the hand-offs it covers here, with the partition and offset the broker gave
them, and deletes those its partitions have consumed; after a broker loss ``clm run``
publishes the rest again (``clm/recovery.py``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handoff_journal",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        # where the broker put it; both NULL while it waits to be published again
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_handoff_journal")),
        schema="engine",
    )
    op.create_index(
        "ix_handoff_journal_partition_offset",
        "handoff_journal",
        ["partition", "offset"],
        schema="engine",
    )


def downgrade() -> None:
    op.drop_table("handoff_journal", schema="engine")
