"""What the ingest endpoints need, built once in the lifespan and handed out as a dependency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.pipeline import Pipeline
from services.ingest.settings import IngestSettings
from services.ingest.writekeys.repository import WriteKeyResolver
from shared.kafka.deadletters import DeadLetters


@dataclass
class IngestContext:
    settings: IngestSettings
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    pipeline: Pipeline
    write_keys: WriteKeyResolver
    dead_letters: DeadLetters
    inflight: int = field(default=0)


def _context(request: Request) -> IngestContext:
    ctx: IngestContext = request.app.state.ingest
    return ctx


IngestDep = Annotated[IngestContext, Depends(_context)]
