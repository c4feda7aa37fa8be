"""The ingest service: the Segment-compatible Tracking API and the storefront.events consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.routing import APIRoute

from services.ingest.api import rejected, tracking, writekeys
from services.ingest.context import IngestContext
from services.ingest.cors import TrackingCORS
from services.ingest.pipeline import Pipeline, prune_seen
from services.ingest.rejected.recorder import RecordingDeadLetters, prune_expired
from services.ingest.settings import IngestSettings
from services.ingest.storefront import run_storefront_consumer
from services.ingest.writekeys.repository import WriteKeyResolver
from shared.http.app import create_service_app
from shared.http.resources import service_resources
from shared.settings import ServiceSettings
from shared.tasks import every

log = logging.getLogger(__name__)

SERVICE = "ingest"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    cfg = settings if isinstance(settings, IngestSettings) else IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_resources(app, cfg, service=SERVICE) as res:
            dead_letters = RecordingDeadLetters(res.producer, SERVICE, sessions=res.sessions)
            ctx = IngestContext(
                settings=cfg,
                sessions=res.sessions,
                producer=res.producer,
                pipeline=Pipeline(
                    res.sessions,
                    res.producer,
                    produce_timeout=cfg.produce_timeout_seconds,
                    journal=cfg.event_journal,
                ),
                write_keys=WriteKeyResolver(res.sessions, ttl=cfg.write_key_cache_seconds),
                dead_letters=dead_letters,
            )
            app.state.ingest = ctx
            if cfg.storefront_consumer:
                res.supervisor.start("storefront-consumer", lambda stop: _consume(ctx, stop))
            res.supervisor.start("prune-seen", lambda stop: _prune(ctx, stop))
            res.supervisor.start(
                "prune-rejected",
                lambda stop: every(
                    3600,
                    stop,
                    lambda: prune_expired(res.sessions, days=cfg.rejected_retention_days),
                ),
            )
            log.info("ingest started", extra={"port": cfg.ingest_port})
            yield
        log.info("ingest stopped")

    app = create_service_app(
        title="clm ingest",
        description="Segment-compatible Tracking API: storefront events in, normalized events "
        "on Kafka clm.events.",
        settings=cfg,
        lifespan=lifespan,
        request_dependencies=("postgres", "kafka"),
    )
    app.include_router(tracking.router)
    app.include_router(writekeys.router)
    app.include_router(rejected.router)
    if cfg.cors_origins:
        paths = {route.path for route in tracking.router.routes if isinstance(route, APIRoute)}
        app.add_middleware(TrackingCORS, origins=cfg.cors_origins, paths=paths)
    return app


async def _consume(ctx: IngestContext, stop: asyncio.Event) -> None:
    await run_storefront_consumer(ctx, stop)


async def _prune(ctx: IngestContext, stop: asyncio.Event) -> None:
    async def once() -> None:
        deleted = await prune_seen(ctx.sessions, hours=ctx.settings.dedupe_hours)
        if deleted:
            log.info("pruned dedupe ids", extra={"deleted": deleted})

    await every(600, stop, once)
