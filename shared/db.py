"""Database engine and session helpers (async SQLAlchemy 2 on asyncpg).

The edge owns the transaction: a request dependency or a consumer batch opens it with
:func:`transaction`; services only add and flush.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def metadata_for(schema: str) -> MetaData:
    """Each service owns one PostgreSQL schema; its tables live there."""
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def async_url(url: str) -> str:
    """Normalize any PostgreSQL URL to the asyncpg dialect SQLAlchemy expects."""
    parts = urlsplit(url)
    scheme = "postgresql+asyncpg"
    query = dict(parse_qsl(parts.query))
    # asyncpg takes the unix socket directory as ``host``; SQLAlchemy passes query args through.
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _connect_args(
    application_name: str, connect_timeout: float, command_timeout: float | None
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "server_settings": {"application_name": application_name},
        # asyncpg's own default is 60 s: a server that accepts the socket and never answers
        # (stopped, overloaded) would hold every new connection that long.
        "timeout": connect_timeout,
    }
    if command_timeout:
        args["command_timeout"] = command_timeout
    return args


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    application_name: str = "clm",
    connect_timeout: float = 5.0,
    command_timeout: float | None = None,
    pool_timeout: float = 30.0,
) -> AsyncEngine:
    """An engine on ``url``. ``command_timeout`` bounds every statement on the client side,
    so a server that stopped answering fails the statement instead of hanging it; a
    statement that fails so is retried by the consumer loops (it is transient)."""
    return create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=pool_timeout,
        connect_args=_connect_args(application_name, connect_timeout, command_timeout),
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block ends, roll back on error."""
    async with sessions() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


class DatabaseProbe:
    """Is the server answering right now? A fresh connection per check, never one from the
    service's pool: a pool held by requests waiting on a stopped server would make the probe
    wait in line behind them, and a busy pool would make a healthy server look down."""

    def __init__(self, url: str, *, timeout: float, application_name: str = "clm-probe") -> None:
        self.timeout = timeout
        self.engine = create_async_engine(
            async_url(url),
            poolclass=NullPool,
            connect_args=_connect_args(application_name, timeout, timeout),
        )

    async def __call__(self) -> None:
        """Raise unless the server answers ``SELECT 1`` within the timeout."""
        async with asyncio.timeout(self.timeout):
            await ping(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()
