"""The embedded PostgreSQL (``make run``, tests, benches) runs with clm's server settings."""

from __future__ import annotations

import os

import asyncpg
import pytest

from clm.runtime import SERVER_SETTINGS, SETTINGS_FILE
from tests.support.services import Infra


@pytest.mark.skipif(
    bool(os.environ.get("CLM_DATABASE_URL")), reason="an external server keeps its own settings"
)
async def test_the_embedded_server_runs_with_the_settings_from_its_start(infra: Infra) -> None:
    connection = await asyncpg.connect(infra.database_url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch(
            "SELECT name, sourcefile, pending_restart FROM pg_settings WHERE name = ANY($1)",
            list(SERVER_SETTINGS),
        )
    finally:
        await connection.close()
    # shared_buffers can only be set before the server starts: the file must be read then,
    # and no ALTER SYSTEM value of an older data directory may override it.
    assert {row["name"] for row in rows} == set(SERVER_SETTINGS)
    for row in rows:
        assert (row["sourcefile"] or "").endswith(SETTINGS_FILE), row
        assert not row["pending_restart"], row
