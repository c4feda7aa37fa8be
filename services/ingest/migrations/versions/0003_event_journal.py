"""the event journal: accepted events kept until the engine has consumed them

With ``CLM_EVENT_JOURNAL`` on (``clm run`` turns it on with its embedded broker, which keeps
everything in memory only), every event answered 200 is also kept here, with the partition
and offset the broker gave it. ``clm run`` deletes the rows the trigger engine has
checkpointed past, and after a broker loss publishes the others again, in order.

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


def upgrade() -> None:
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        # where the broker put it; both NULL while it waits to be published again
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("offset", sa.BigInteger(), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_journal")),
        schema="ingest",
    )
    op.create_index(
        "ix_journal_partition_offset", "journal", ["partition", "offset"], schema="ingest"
    )


def downgrade() -> None:
    op.drop_table("journal", schema="ingest")
