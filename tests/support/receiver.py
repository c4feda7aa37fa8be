"""A stand-in provider for tests: one small HTTP server on 127.0.0.1 serving many hooks
(``/hooks/<name>``), each with its own ``whsec_`` secret and a script of answers (status,
headers, delay). Every request is verified with the official ``standardwebhooks`` package.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.services import RunningService

T = TypeVar("T")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def eventually(
    check: Callable[[], Awaitable[T | None]], *, timeout: float = 20.0, interval: float = 0.05
) -> T:
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: T | None = None
    while True:
        last = await check()
        if last:
            return last
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Hit:
    headers: dict[str, str]
    raw: bytes
    verified: bool
    status: int
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def body(self) -> Any:
        return orjson.loads(self.raw)

    @property
    def action_id(self) -> str:
        return str(self.body["data"]["action_id"])


@dataclass
class Hook:
    name: str
    url: str
    secret: str
    script: deque[Reply] = field(default_factory=deque)
    hits: list[Hit] = field(default_factory=list)

    def respond(self, *replies: Reply | int) -> None:
        """Answer the next requests so (then 200)."""
        self.script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def for_action(self, action_id: str) -> list[Hit]:
        return [h for h in self.hits if h.webhook_id == action_id]

    def delivered(self, action_id: str) -> list[Hit]:
        return [h for h in self.for_action(action_id) if 200 <= h.status < 300]


class Receiver:
    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}
        self.service: RunningService | None = None

    def hook(self, *replies: Reply | int, path: str = "hooks") -> Hook:
        assert self.service is not None
        name = uuid.uuid4().hex[:12]
        hook = Hook(name, f"{self.service.url}/{path}/{name}", new_secret())
        hook.respond(*replies)
        self.hooks[name] = hook
        return hook

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{name}")
        async def receive(name: str, request: Request) -> Response:
            hook = self.hooks.get(name)
            if hook is None:
                return Response(status_code=404)
            raw = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                Webhook(hook.secret).verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            reply = hook.script.popleft() if hook.script else Reply()
            status = reply.status if verified else 401
            hook.hits.append(Hit(headers, raw, verified, status, time.monotonic()))
            if reply.delay:
                await asyncio.sleep(reply.delay)  # a slow provider
            return Response(status_code=status, headers=reply.headers, content=b"ok")

        @app.post("/moved/{name}")
        async def moved(name: str) -> Response:
            return Response(status_code=302, headers={"location": f"/hooks/{name}"})

        return app
