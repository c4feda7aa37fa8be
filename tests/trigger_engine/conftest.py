"""One trigger engine for the integration tests (restartable), a producer, rule helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from tests.support.services import Infra
from tests.trigger_engine.engine_support import Engine, Rules


@pytest.fixture(scope="session")
async def engine(infra: Infra) -> AsyncIterator[Engine]:
    """The engine under test: its own consumer group, fast timer and outbox polling."""
    running = Engine(infra, group=f"test-engine-{uuid.uuid4().hex[:8]}")
    await running.start()
    yield running
    await running.stop()


@pytest.fixture(scope="session")
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all", linger_ms=0)
    await kafka.start()
    yield kafka
    await kafka.stop()


@pytest.fixture
async def rules(engine: Engine) -> AsyncIterator[Rules]:
    """Creates rules for one test and deletes them afterwards."""
    created = Rules(engine)
    yield created
    await created.delete_all()


@pytest.fixture
def prefix() -> str:
    """A random customer prefix: this test's customers and nobody else's."""
    return f"it{uuid.uuid4().hex[:10]}"
