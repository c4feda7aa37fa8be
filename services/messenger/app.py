"""The messenger service: signed webhook delivery of actions with retries, dead letters,
replay, suppressions and managed templates.

Background jobs: the ``clm.actions`` consumer (deliveries in), the dispatcher (claims due
deliveries from PostgreSQL and sends them) and the gauges refresher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.messenger.context import MessengerContext
from services.messenger.deliveries import api as deliveries_api
from services.messenger.deliveries.consumer import run_actions_consumer
from services.messenger.destinations import api as destinations_api
from services.messenger.destinations.secrets import reencrypt_all
from services.messenger.dispatch.worker import Dispatcher
from services.messenger.observability.stats import run_stats
from services.messenger.providers import api as providers_api
from services.messenger.settings import MessengerSettings
from services.messenger.suppressions import api as suppressions_api
from services.messenger.templates_store import api as templates_api
from services.messenger.webhooks.transport import Resolver, system_resolver, webhook_client
from shared.db import transaction
from shared.http.app import create_service_app
from shared.http.resources import service_resources
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

SERVICE = "messenger"


def create_app(
    settings: ServiceSettings | None = None, *, resolver: Resolver | None = None
) -> FastAPI:
    """``resolver`` replaces the system DNS resolver (tests use it to play DNS tricks)."""
    cfg = settings if isinstance(settings, MessengerSettings) else MessengerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_resources(app, cfg, service=SERVICE) as res:
            http = webhook_client(
                resolver=resolver or system_resolver,
                allow_private=cfg.allow_private_destinations,
                max_connections=cfg.delivery_concurrency,
            )
            res.closers.append(http.aclose)  # after the dispatcher stopped sending
            ctx = MessengerContext(
                settings=cfg,
                sessions=res.sessions,
                policy=cfg.retry_policy(),
                resolver=resolver or system_resolver,
                http=http,
                secrets=cfg.secret_box(),
            )
            app.state.messenger = ctx
            await _reencrypt_secrets(ctx)
            dispatcher = Dispatcher(ctx)

            async def consume(stop: asyncio.Event) -> None:
                await run_actions_consumer(ctx, res.dead_letters, stop)

            res.supervisor.start("actions-consumer", consume)
            res.supervisor.start("dispatcher", dispatcher.run)
            res.supervisor.start("stats", lambda stop: run_stats(ctx, stop))
            log.info(
                "messenger started",
                extra={
                    "port": cfg.messenger_port,
                    "private_destinations": cfg.allow_private_destinations,
                },
            )
            yield
        log.info("messenger stopped")

    app = create_service_app(
        title="clm messenger",
        description="Signed webhook delivery of actions (Standard Webhooks) with retries, "
        "dead letters, replay, suppressions and managed templates.",
        settings=cfg,
        lifespan=lifespan,
    )
    for module in (
        destinations_api,
        deliveries_api,
        suppressions_api,
        providers_api,
        templates_api,
    ):
        app.include_router(module.router)
    return app


async def _reencrypt_secrets(ctx: MessengerContext) -> None:
    """Secrets still under an old key (CLM_SECRET_KEYS_OLD) move to the current one."""
    async with transaction(ctx.sessions) as session:
        changed, unreadable = await reencrypt_all(session, ctx.secrets)
    if changed:
        log.info("re-encrypted destination secrets under the current key", extra={"count": changed})
    if unreadable:
        log.error(
            "destination secrets no configured key decrypts: their deliveries fail until the "
            "key they were stored with is in CLM_SECRET_KEY or CLM_SECRET_KEYS_OLD",
            extra={"destinations": unreadable},
        )
