"""Migration 0002 encrypts the destination secrets stored in plaintext before it (and its
downgrade decrypts them), on a database of its own on the session's server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from alembic import command
from sqlalchemy.engine import Connection

from services.messenger.destinations.secrets import SecretBox
from shared.db import create_engine
from shared.migrations import alembic_config, upgrade
from tests.support.services import Infra

KEY = "migration-test-key-" + "m" * 24
PLAINTEXT = "whsec_" + "bWlncmF0aW9uLXRlc3Qtc2VjcmV0LWJ5dGVz"


@pytest.fixture
async def scratch_url(infra: Infra) -> AsyncIterator[str]:
    name = f"clm_migration_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(infra.database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        parts = urlsplit(infra.database_url)
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _secrets(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        column = await conn.fetchval(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'messenger' AND table_name = 'destinations' AND column_name LIKE 'secret%'"
        )
        return [r[0] for r in await conn.fetch(f"SELECT {column} FROM messenger.destinations")]
    finally:
        await conn.close()


async def test_plaintext_secrets_are_encrypted_by_the_migration_and_back_by_its_downgrade(
    scratch_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await upgrade("services.messenger", "messenger", scratch_url, revision="0001")
    conn = await asyncpg.connect(scratch_url)
    try:
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO messenger.destinations (id, name, channel, url, secret, "
            "rate_limit_per_second, max_concurrency, enabled, is_default, created_at, "
            "updated_at) VALUES ('dst_old', NULL, 'email', 'https://x.example/h', $1, 50, 10,"
            " true, true, $2, $2)",
            PLAINTEXT,
            now,
        )
    finally:
        await conn.close()

    monkeypatch.delenv("CLM_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="CLM_SECRET_KEY is required"):
        await upgrade("services.messenger", "messenger", scratch_url)
    assert await _secrets(scratch_url) == [PLAINTEXT]  # nothing half-done

    monkeypatch.setenv("CLM_SECRET_KEY", KEY)
    await upgrade("services.messenger", "messenger", scratch_url)
    [sealed] = await _secrets(scratch_url)
    assert sealed != PLAINTEXT and SecretBox(KEY).open(sealed) == PLAINTEXT

    def downgrade(connection: Connection) -> None:
        cfg = alembic_config("services.messenger", scratch_url)
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0001")

    engine = create_engine(scratch_url, pool_size=1)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(downgrade)
    finally:
        await engine.dispose()
    assert await _secrets(scratch_url) == [PLAINTEXT]
