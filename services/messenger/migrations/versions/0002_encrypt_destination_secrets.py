"""encrypt destination secrets at rest

Renames ``destinations.secret`` to ``secret_encrypted`` and encrypts the plaintext secrets
stored before, with the key of ``CLM_SECRET_KEY`` (required when there are any).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

from services.messenger.destinations.secrets import SecretBox, SecretKeySettings

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "messenger"
PLAINTEXT_PREFIX = "whsec_"


def _box() -> SecretBox:
    try:
        return SecretKeySettings().secret_box_for(dev_mode=False)
    except ValueError as exc:
        raise RuntimeError(f"cannot encrypt the stored destination secrets: {exc}") from None


def _rewrite(where: str, transform: Callable[[SecretBox, str], str]) -> None:
    """Apply ``transform`` to the secrets of the rows ``where`` selects. The key is needed
    only when there is such a row: a new installation migrates without one."""
    conn = op.get_bind()
    rows = conn.execute(
        sa.text(f"SELECT id, secret_encrypted FROM {S}.destinations WHERE {where}")
    ).all()
    if not rows:
        return
    box = _box()
    for dest_id, value in rows:
        new = transform(box, value)
        conn.execute(
            sa.text(f"UPDATE {S}.destinations SET secret_encrypted = :v WHERE id = :id"),
            {"v": new, "id": dest_id},
        )


def upgrade() -> None:
    op.alter_column("destinations", "secret", new_column_name="secret_encrypted", schema=S)
    _rewrite(f"secret_encrypted LIKE '{PLAINTEXT_PREFIX}%'", SecretBox.seal)


def downgrade() -> None:
    _rewrite(f"secret_encrypted NOT LIKE '{PLAINTEXT_PREFIX}%'", SecretBox.open)
    op.alter_column("destinations", "secret_encrypted", new_column_name="secret", schema=S)
