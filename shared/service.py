"""Start one service as its container does: migrations, topics, then the HTTP server.

Uvicorn turns SIGTERM/SIGINT into a graceful shutdown; the FastAPI lifespan then stops the
background jobs, which drain and commit before the process exits.
"""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
import uvloop
from fastapi import FastAPI

from shared.kafka.admin import ensure_topics
from shared.logging import configure_logging
from shared.migrations import upgrade
from shared.settings import ServiceSettings


async def prepare(settings: ServiceSettings, *, package: str, schema: str) -> None:
    """Apply this service's migrations and create missing topics."""
    if settings.migrate_on_start:
        await upgrade(package, schema, settings.require_database_url())
        await ensure_topics(settings.require_kafka_bootstrap(), settings.topic_config())


def server_config(app: FastAPI, *, host: str, port: int) -> uvicorn.Config:
    """How every clm HTTP server runs: our logging, httptools, a graceful stop on SIGTERM."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=20,
        lifespan="on",
        loop="none",
        http="httptools",
    )


def serve(
    create_app: Callable[[ServiceSettings], FastAPI],
    settings: ServiceSettings,
    *,
    service: str,
    package: str,
    schema: str,
    port: int,
) -> None:
    configure_logging(service, level=settings.log_level, fmt=settings.log_format)
    settings.require_database_url()
    settings.require_kafka_bootstrap()
    settings.require_admin_token()

    async def main() -> None:
        await prepare(settings, package=package, schema=schema)
        config = server_config(create_app(settings), host=settings.host, port=port)
        await uvicorn.Server(config).serve()

    uvloop.run(main())
