"""What every service's lifespan builds: a database engine, a Kafka producer, readiness
checks and a supervisor for background jobs, torn down in the right order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.db import DatabaseProbe, create_engine, session_factory
from shared.kafka.deadletters import DeadLetters
from shared.kafka.producer import create_producer
from shared.kafka.producer import ping as kafka_ping
from shared.settings import ServiceSettings
from shared.tasks import Supervisor


@dataclass
class Resources:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    dead_letters: DeadLetters
    supervisor: Supervisor = field(default_factory=Supervisor)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@asynccontextmanager
async def service_resources(
    app: FastAPI, settings: ServiceSettings, *, service: str, pool_size: int = 10
) -> AsyncIterator[Resources]:
    """On exit: mark the app not ready, stop background jobs (they drain and commit), run the
    service's own closers, then stop the producer and the database engine."""
    database_url = settings.require_database_url()
    engine = create_engine(
        database_url,
        pool_size=pool_size,
        application_name=f"clm-{service}",
        connect_timeout=settings.db_connect_timeout_seconds,
        command_timeout=settings.db_command_timeout_seconds or None,
    )
    # /readyz gives each check 3 s; the request guard bounds it with its own, shorter wait.
    probe = DatabaseProbe(database_url, timeout=3.0, application_name=f"clm-{service}-probe")
    producer = create_producer(
        settings.require_kafka_bootstrap(),
        client_id=f"clm-{service}",
        enable_idempotence=settings.kafka_enable_idempotence,
    )
    await producer.start()
    resources = Resources(
        engine=engine,
        sessions=session_factory(engine),
        producer=producer,
        dead_letters=DeadLetters(producer, service),
    )
    app.state.readiness = {"postgres": probe, "kafka": lambda: kafka_ping(producer)}
    try:
        yield resources
    finally:
        app.state.stopping = True
        await resources.supervisor.shutdown()
        for close in reversed(resources.closers):
            await close()
        await producer.stop()
        await probe.close()
        await engine.dispose()
