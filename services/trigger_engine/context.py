"""What the engine's jobs and endpoints share, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.trigger_engine.config_cache import ConfigCache
from services.trigger_engine.settings import EngineSettings
from shared.kafka.deadletters import DeadLetters


@dataclass
class EngineContext:
    settings: EngineSettings
    sessions: async_sessionmaker[AsyncSession]
    producer: AIOKafkaProducer
    dead_letters: DeadLetters
    config: ConfigCache = field(default_factory=ConfigCache)


def _context(request: Request) -> EngineContext:
    ctx: EngineContext = request.app.state.engine
    return ctx


EngineDep = Annotated[EngineContext, Depends(_context)]
