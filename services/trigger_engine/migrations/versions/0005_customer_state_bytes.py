"""customer state as JSON bytes, with room on each page for in-place updates

The engine rewrites a customer's state once per batch that touches the customer. As JSONB
every write is parsed and re-encoded by PostgreSQL, and a full page forces a new index
entry per update. The state is only ever read back whole by the engine, so it is stored as
the UTF-8 JSON the engine wrote (``convert_from(state, 'UTF8')::jsonb`` reads it in psql),
and the table keeps 30 % of every page free for heap-only (HOT) updates.

The column change rewrites ``engine.customers`` under an exclusive lock, and every engine
writer waits for it to finish: on a large installation, upgrade in a quiet hour.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The fill factor first: the type change rewrites the table, and packs it by it.
    op.execute("ALTER TABLE engine.customers SET (fillfactor = 70)")
    op.execute(
        "ALTER TABLE engine.customers "
        "ALTER COLUMN state TYPE bytea USING convert_to(state::text, 'UTF8')"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE engine.customers RESET (fillfactor)")
    op.execute(
        "ALTER TABLE engine.customers "
        "ALTER COLUMN state TYPE jsonb USING convert_from(state, 'UTF8')::jsonb"
    )
