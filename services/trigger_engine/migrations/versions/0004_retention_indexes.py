"""indexes the retention job deletes by: events by received_at, published outbox rows

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

``IF NOT EXISTS``: on a large ``engine.events`` an operator can build the index beforehand
without blocking writes (``CREATE INDEX CONCURRENTLY ix_events_received_at ON engine.events
(received_at)``); this migration then leaves it as it is.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_events_received_at",
        "events",
        ["received_at"],
        unique=False,
        schema="engine",
        if_not_exists=True,
    )
    op.create_index(
        "ix_outbox_published_at",
        "outbox",
        ["published_at"],
        unique=False,
        schema="engine",
        postgresql_where=sa.text("published_at IS NOT NULL"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_outbox_published_at",
        table_name="outbox",
        schema="engine",
        postgresql_where=sa.text("published_at IS NOT NULL"),
        if_exists=True,
    )
    op.drop_index("ix_events_received_at", table_name="events", schema="engine", if_exists=True)
