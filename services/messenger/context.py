"""What the messenger's endpoints and background jobs share, built once in the lifespan."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.messenger.delivery.retry import RetryPolicy
from services.messenger.destinations.secrets import SecretBox
from services.messenger.settings import MessengerSettings
from services.messenger.webhooks.transport import Resolver


@dataclass
class MessengerContext:
    settings: MessengerSettings
    sessions: async_sessionmaker[AsyncSession]
    policy: RetryPolicy
    resolver: Resolver
    http: httpx.AsyncClient
    #: Encrypts and decrypts destination secrets (CLM_SECRET_KEY).
    secrets: SecretBox
    #: Set to wake the dispatcher at once (new deliveries, a replay) instead of at its poll.
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def allow_private(self) -> bool:
        return self.settings.allow_private_destinations

    def wake(self) -> None:
        self.wakeup.set()


def _context(request: Request) -> MessengerContext:
    ctx: MessengerContext = request.app.state.messenger
    return ctx


MessengerDep = Annotated[MessengerContext, Depends(_context)]
