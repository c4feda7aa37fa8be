"""The ingest service: the Segment-compatible Tracking API and the storefront.events consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.ingest.api import tracking, writekeys
from services.ingest.context import IngestContext
from services.ingest.pipeline import Pipeline, prune_seen
from services.ingest.settings import IngestSettings
from services.ingest.storefront import run_storefront_consumer
from services.ingest.writekeys.repository import WriteKeyResolver
from shared.db import create_engine, ping, session_factory
from shared.http.app import create_service_app
from shared.kafka.deadletters import DeadLetters
from shared.kafka.producer import create_producer
from shared.kafka.producer import ping as kafka_ping
from shared.settings import ServiceSettings
from shared.tasks import Supervisor

log = logging.getLogger(__name__)

SERVICE = "ingest"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    cfg = settings if isinstance(settings, IngestSettings) else IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(cfg.require_database_url(), application_name="clm-ingest")
        sessions = session_factory(engine)
        producer = create_producer(
            cfg.require_kafka_bootstrap(),
            client_id="clm-ingest",
            enable_idempotence=cfg.kafka_enable_idempotence,
        )
        await producer.start()
        ctx = IngestContext(
            settings=cfg,
            sessions=sessions,
            producer=producer,
            pipeline=Pipeline(sessions, producer, produce_timeout=cfg.produce_timeout_seconds),
            write_keys=WriteKeyResolver(sessions, ttl=cfg.write_key_cache_seconds),
            dead_letters=DeadLetters(producer, SERVICE),
        )
        app.state.ingest = ctx
        app.state.readiness = {
            "postgres": lambda: ping(engine),
            "kafka": lambda: kafka_ping(producer),
        }
        supervisor = Supervisor()
        if cfg.storefront_consumer:
            supervisor.start("storefront-consumer", lambda stop: _consume(ctx, stop))
        supervisor.start("prune-seen", lambda stop: _prune(ctx, stop))
        log.info("ingest started", extra={"port": cfg.ingest_port})
        try:
            yield
        finally:
            app.state.stopping = True
            await supervisor.shutdown()
            await producer.stop()
            await engine.dispose()
            log.info("ingest stopped")

    app = create_service_app(
        title="clm ingest",
        description="Segment-compatible Tracking API: storefront events in, normalized events "
        "on Kafka clm.events.",
        settings=cfg,
        lifespan=lifespan,
    )
    app.include_router(tracking.router)
    app.include_router(writekeys.router)
    return app


async def _consume(ctx: IngestContext, stop: asyncio.Event) -> None:
    await run_storefront_consumer(ctx, stop)


async def _prune(ctx: IngestContext, stop: asyncio.Event) -> None:
    while not stop.is_set():
        deleted = await prune_seen(ctx.sessions, hours=ctx.settings.dedupe_hours)
        if deleted:
            log.info("pruned dedupe ids", extra={"deleted": deleted})
        try:
            async with asyncio.timeout(600):
                await stop.wait()
        except TimeoutError:
            pass
