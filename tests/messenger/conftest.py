"""Fixtures of the messenger tests (helpers live in ``messenger_support``): a stand-in
provider, messengers started per test with fast retries, all stopped after it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.app import create_app
from services.messenger.webhooks.transport import Resolver
from shared.db import create_engine
from tests.messenger.messenger_support import MessengerFactory, messenger_settings
from tests.support.receiver import Receiver
from tests.support.services import Infra, RunningService, start_service


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    rec.service = await start_service(rec.app())
    yield rec
    await rec.service.stop()


@pytest.fixture
async def start_messenger(infra: Infra) -> AsyncIterator[MessengerFactory]:
    """Start messengers (settings overridable, e.g. ``dev_mode=False``); all stop after the
    test. ``resolver=`` replaces DNS."""
    running: list[RunningService] = []

    async def start(*, resolver: Resolver | None = None, **overrides: Any) -> RunningService:
        service = await start_service(
            create_app(messenger_settings(infra, **overrides), resolver=resolver)
        )
        running.append(service)
        return service

    yield start
    for service in running:
        if not service.task.done():
            await service.stop()


@pytest.fixture
async def messenger(start_messenger: MessengerFactory) -> RunningService:
    return await start_messenger()


@pytest.fixture
async def session(infra: Infra) -> AsyncIterator[AsyncSession]:
    """A session in a transaction rolled back at the end: other tests never see its rows."""
    engine = create_engine(infra.database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            yield AsyncSession(bind=conn, expire_on_commit=False)
            await transaction.rollback()
    finally:
        await engine.dispose()
