"""The whole system for the console tests: ingest, a trigger engine, a messenger with fast
retries, a stand-in provider and the console pointed at them, started once for the
package and stopped after it (a second messenger or engine must not outlive these tests:
the other packages' tests expect their own to be the only one)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.console.app import create_app as create_console
from services.console.settings import ConsoleSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.messenger.app import create_app as create_messenger
from tests.console.console_support import System
from tests.messenger.messenger_support import messenger_settings
from tests.support.receiver import Receiver
from tests.support.services import Infra, settings_env, start_service
from tests.trigger_engine.engine_support import Engine


@pytest.fixture(scope="package")
async def system(infra: Infra) -> AsyncIterator[System]:
    receiver = Receiver()
    receiver.service = await start_service(receiver.app())
    ingest = await start_service(
        create_ingest(IngestSettings(**settings_env(infra, storefront_consumer=False)))  # type: ignore[arg-type]
    )
    engine = Engine(infra, group=f"test-console-engine-{uuid.uuid4().hex[:8]}")
    await engine.start()
    messenger = await start_service(
        create_messenger(
            messenger_settings(infra, consumer_group=f"test-console-{uuid.uuid4().hex[:8]}")
        )
    )
    assert engine.service is not None
    console = await start_service(
        create_console(
            ConsoleSettings(
                console_ingest_url=ingest.url,
                console_engine_url=engine.service.url,
                console_messenger_url=messenger.url,
                log_format="text",
            )
        )
    )
    running = System(ingest, engine, messenger, console, receiver)
    try:
        yield running
    finally:
        for service in (console, messenger):
            await service.stop()
        await engine.stop()
        await ingest.stop()
        await receiver.service.stop()


@pytest.fixture
async def stack(system: System) -> AsyncIterator[System]:
    """The system, with what the test created removed after it."""
    yield system
    await system.cleanup()
