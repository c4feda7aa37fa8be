"""Alembic, per service: each service has its own schema and its own version table.

Migrations run programmatically over an async connection (Alembic's "connection sharing"
recipe), under a PostgreSQL advisory lock so that several replicas starting together apply
them once.
"""

from __future__ import annotations

import asyncio
import zlib
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from shared.db import async_url, create_engine


def alembic_config(package: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", f"{package}:migrations")
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, cfg: Config, schema: str, revision: str) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": zlib.crc32(schema.encode())})
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def upgrade(package: str, schema: str, url: str, *, revision: str = "head") -> None:
    """Apply the migrations of ``package`` (e.g. ``services.ingest``) up to ``revision``."""
    cfg = alembic_config(package, url)
    engine = create_engine(url, pool_size=1, application_name=f"clm-migrate-{schema}")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade, cfg, schema, revision)
    finally:
        await engine.dispose()


def _configure(connection: Connection, metadata: MetaData) -> None:
    schema = metadata.schema

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return name == schema if type_ == "schema" else True

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(metadata: MetaData) -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{metadata.schema}"'))
            await conn.run_sync(_configure, metadata)
    finally:
        await engine.dispose()


def run_env(metadata: MetaData) -> None:
    """The body of every service's ``migrations/env.py``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection, metadata)
    else:
        asyncio.run(_run_standalone(metadata))
