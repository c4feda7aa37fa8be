"""A stand-in provider for harnesses: an HTTP server on 127.0.0.1 that verifies each
webhook's Standard Webhooks signature, records every request (``webhook-id``, the customer
and rule from the body, the status it answered) and can be switched to answer 503 for an
outage.

It runs on an event loop of its own in a thread, so it answers promptly whatever the
harness's loop is busy with, and the harness's signal handling stays its own.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.messenger.delivery.signing import generate_secret
from services.messenger.providers.verify import InvalidSignature, verify


@dataclass(frozen=True)
class Hit:
    """One request the sink received."""

    webhook_id: str
    customer_id: str | None
    rule: str | None
    #: what the sink answered: 200, 503 during an outage, 401 for a bad signature
    status: int
    verified: bool
    at: float

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300


def _describe(body: bytes) -> tuple[str | None, str | None]:
    """The customer id and rule of an ``action.send`` body (None where it has none)."""
    try:
        payload = orjson.loads(body)
        data = payload["data"]
        customer = data["customer"]["id"]
        rule = data.get("rule")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None, None
    return (
        customer if isinstance(customer, str) else None,
        rule if isinstance(rule, str) else None,
    )


class WebhookSink:
    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret or generate_secret()
        self._hits: list[Hit] = []
        self._lock = threading.Lock()
        self._outage = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # --- what the provider does -------------------------------------------------------------

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            verify(self.secret, headers, body, now=int(time.time()))
            verified = True
        except InvalidSignature:
            verified = False
        status = 503 if self._outage.is_set() else 200 if verified else 401
        customer, rule = _describe(body)
        hit = Hit(headers.get("webhook-id", ""), customer, rule, status, verified, time.time())
        with self._lock:
            self._hits.append(hit)
        return Response(status_code=status)

    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def outage(self, on: bool) -> None:
        """Answer 503 to everything while on."""
        if on:
            self._outage.set()
        else:
            self._outage.clear()

    # --- running ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> str:
        """Serve on a free loopback port; returns the hook URL."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/hooks", self._receive, methods=["POST"])])
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])),
            name="webhook-sink",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook sink did not start")
            time.sleep(0.02)  # a poll inside a deadline, before any work begins
        self.url = f"http://127.0.0.1:{port}/hooks"
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
