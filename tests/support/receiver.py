"""A stand-in provider: receives webhooks, verifies their Standard Webhooks signature with the
official `standardwebhooks` package, and answers with the status codes a test scripts."""

from __future__ import annotations

import base64
import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.services import RunningService, start_service


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool
    status: int

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


@dataclass
class Receiver:
    secret: str
    service: RunningService | None = None
    received: list[Received] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)

    @property
    def url(self) -> str:
        assert self.service is not None
        return self.service.url + "/hook"

    def respond(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        """Answer the next requests with these statuses (then 200)."""
        for s in statuses:
            self.script.append(s if isinstance(s, tuple) else (s, {}))

    def delivered(self) -> list[Received]:
        return [r for r in self.received if r.verified and 200 <= r.status < 300]

    def build_app(self) -> FastAPI:
        app = FastAPI()
        verifier = Webhook(self.secret)

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            raw = await request.body()
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                verifier.verify(raw, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
            status, extra = self.script.popleft() if self.script else (200, {})
            if not verified:
                status = 401
            self.received.append(Received(headers, orjson.loads(raw), verified, status))
            return Response(status_code=status, headers=extra)

        return app

    async def start(self) -> Receiver:
        self.service = await start_service(self.build_app())
        return self

    async def stop(self) -> None:
        if self.service is not None:
            await self.service.stop()
