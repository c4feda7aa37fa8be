"""The trigger_engine service: the clm.events consumer, the timer worker, the outbox relay
and the ops API, sharing one :class:`~services.trigger_engine.context.EngineContext`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.trigger_engine.consumer.loop import run_event_consumer
from services.trigger_engine.context import EngineContext
from services.trigger_engine.customers.api import router as customers_router
from services.trigger_engine.lifecycle.api import router as lifecycle_router
from services.trigger_engine.lifecycle.reevaluation import LifecyclePasses
from services.trigger_engine.metrics.api import router as metrics_router
from services.trigger_engine.metrics.gauges import run_gauges
from services.trigger_engine.outbox.relay import Relay
from services.trigger_engine.processing.cache import StateCache
from services.trigger_engine.retention import RetentionPolicy, run_retention
from services.trigger_engine.rules.api import router as rules_router
from services.trigger_engine.send_policy.api import router as send_policy_router
from services.trigger_engine.settings import EngineSettings
from services.trigger_engine.timers.worker import TimerWorker
from shared.http.app import create_service_app
from shared.http.resources import service_resources
from shared.settings import ServiceSettings
from shared.tasks import Supervisor

log = logging.getLogger(__name__)

SERVICE = "trigger_engine"


def start_jobs(ctx: EngineContext, supervisor: Supervisor) -> None:
    """Start the background jobs the settings ask for."""
    cfg = ctx.settings
    if cfg.run_consumer:
        supervisor.start("event-consumer", lambda stop: _consume(ctx, stop))
    if cfg.run_timers:
        supervisor.start("timer-worker", TimerWorker(ctx).run)
    if cfg.run_relay:
        supervisor.start("outbox-relay", ctx.relay.run)
    if cfg.run_lifecycle_passes:
        supervisor.start("lifecycle-passes", LifecyclePasses(ctx).run)
    if cfg.run_retention:
        policy = RetentionPolicy.of(cfg)
        supervisor.start(
            "retention",
            lambda stop: run_retention(
                ctx.sessions, policy, stop, every=cfg.retention_interval_seconds
            ),
        )
    supervisor.start(
        "gauges",
        lambda stop: run_gauges(
            ctx.sessions, stop, every=cfg.gauges_seconds, topic=cfg.events_topic
        ),
    )


async def _consume(ctx: EngineContext, stop: asyncio.Event) -> None:
    await run_event_consumer(ctx, stop)


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    cfg = settings if isinstance(settings, EngineSettings) else EngineSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # On exit: not ready, the jobs drain and commit, then the producer and the database stop.
        async with service_resources(app, cfg, service=SERVICE) as res:
            ctx = EngineContext(
                settings=cfg,
                sessions=res.sessions,
                producer=res.producer,
                relay=Relay(
                    res.sessions,
                    res.producer,
                    batch=cfg.outbox_batch,
                    poll_seconds=cfg.outbox_poll_seconds,
                ),
                dead_letters=res.dead_letters,
                states=StateCache(cfg.state_cache_size),
            )
            app.state.engine = ctx
            start_jobs(ctx, res.supervisor)
            log.info("trigger_engine started", extra={"port": cfg.engine_port})
            yield
        log.info("trigger_engine stopped")

    app = create_service_app(
        title="clm trigger engine",
        description="Live customer profiles, lifecycle stages, trigger rules and durable "
        "timers; the ops API.",
        settings=cfg,
        lifespan=lifespan,
    )
    app.include_router(rules_router)
    app.include_router(lifecycle_router)
    app.include_router(send_policy_router)
    app.include_router(customers_router)
    app.include_router(metrics_router)
    return app
