"""What the console's pages share, built once in the lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import httpx
from fastapi import Depends, Request

from services.console.clients import Service
from services.console.sessions import SessionStore
from services.console.settings import ConsoleSettings


@dataclass
class ConsoleContext:
    settings: ConsoleSettings
    sessions: SessionStore
    clients: dict[Service, httpx.AsyncClient]


def _context(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.console
    return ctx


ConsoleDep = Annotated[ConsoleContext, Depends(_context)]
