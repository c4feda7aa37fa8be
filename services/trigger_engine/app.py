"""The trigger_engine service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.trigger_engine.settings import EngineSettings
from shared.db import create_engine, ping, session_factory
from shared.http.app import create_service_app
from shared.kafka.producer import create_producer
from shared.kafka.producer import ping as kafka_ping
from shared.settings import ServiceSettings
from shared.tasks import Supervisor

log = logging.getLogger(__name__)

SERVICE = "trigger_engine"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    cfg = settings if isinstance(settings, EngineSettings) else EngineSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(cfg.require_database_url(), application_name="clm-trigger_engine")
        app.state.sessions = session_factory(engine)
        producer = create_producer(
            cfg.require_kafka_bootstrap(),
            client_id="clm-trigger_engine",
            enable_idempotence=cfg.kafka_enable_idempotence,
        )
        await producer.start()
        app.state.producer = producer
        app.state.readiness = {
            "postgres": lambda: ping(engine),
            "kafka": lambda: kafka_ping(producer),
        }
        supervisor = Supervisor()
        log.info("trigger_engine started", extra={"port": cfg.engine_port})
        try:
            yield
        finally:
            app.state.stopping = True
            await supervisor.shutdown()
            await producer.stop()
            await engine.dispose()
            log.info("trigger_engine stopped")

    return create_service_app(
        title="clm trigger engine",
        description="Live customer profiles, lifecycle stages, trigger rules and durable "
        "timers; the ops API.",
        settings=cfg,
        lifespan=lifespan,
    )
