"""write keys and messageId dedupe

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "write_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("key_prefix", sa.String(32), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_write_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_write_keys_key_hash")),
        schema="ingest",
    )
    op.create_table(
        "seen_messages",
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "message_id", name=op.f("pk_seen_messages")),
        schema="ingest",
    )
    op.create_index(
        "ix_seen_messages_received_at", "seen_messages", ["received_at"], schema="ingest"
    )


def downgrade() -> None:
    op.drop_table("seen_messages", schema="ingest")
    op.drop_table("write_keys", schema="ingest")
