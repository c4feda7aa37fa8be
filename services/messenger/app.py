"""The messenger service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.messenger.settings import MessengerSettings
from shared.db import create_engine, ping, session_factory
from shared.http.app import create_service_app
from shared.kafka.producer import create_producer
from shared.kafka.producer import ping as kafka_ping
from shared.settings import ServiceSettings
from shared.tasks import Supervisor

log = logging.getLogger(__name__)

SERVICE = "messenger"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    cfg = settings if isinstance(settings, MessengerSettings) else MessengerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(cfg.require_database_url(), application_name="clm-messenger")
        app.state.sessions = session_factory(engine)
        producer = create_producer(
            cfg.require_kafka_bootstrap(),
            client_id="clm-messenger",
            enable_idempotence=cfg.kafka_enable_idempotence,
        )
        await producer.start()
        app.state.producer = producer
        app.state.readiness = {
            "postgres": lambda: ping(engine),
            "kafka": lambda: kafka_ping(producer),
        }
        supervisor = Supervisor()
        log.info("messenger started", extra={"port": cfg.messenger_port})
        try:
            yield
        finally:
            app.state.stopping = True
            await supervisor.shutdown()
            await producer.stop()
            await engine.dispose()
            log.info("messenger stopped")

    return create_service_app(
        title="clm messenger",
        description="Signed webhook delivery of actions with retries, dead letters, "
        "replay and suppressions.",
        settings=cfg,
        lifespan=lifespan,
    )
