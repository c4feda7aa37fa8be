"""A database of a test's own on the session's PostgreSQL server, with a service's tables.

For tests that run a second engine (which must not share partitions or timers with the
session's engine) or that empty whole tables.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy import text

from shared.db import create_engine
from shared.migrations import upgrade


def database_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@asynccontextmanager
async def own_database(
    server_url: str,
    *,
    prefix: str,
    package: str = "services.trigger_engine",
    schema: str = "engine",
) -> AsyncIterator[str]:
    """Create a database, apply ``package``'s migrations, yield its URL, drop it after."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, pool_size=1)
    try:
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = database_url(server_url, name)
        await upgrade(package, schema, url)
        yield url
        async with admin.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()
