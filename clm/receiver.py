"""``clm receiver``: a local stand-in for an email/SMS provider, for trying clm out.

It listens on loopback, checks each webhook's Standard Webhooks signature with the
destination secret, prints one JSON line per request and answers 200 (401 when the
signature does not verify). Point a destination at it with
``CLM_ALLOW_PRIVATE_DESTINATIONS=true``.
"""

from __future__ import annotations

import sys
import time

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.messenger.delivery.signing import generate_secret
from services.messenger.providers.verify import InvalidSignature, verify


def create_app(secret: str) -> Starlette:
    async def receive(request: Request) -> Response:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            verify(secret, headers, body, now=int(time.time()))
            verified, status = True, 200
        except InvalidSignature as exc:
            verified, status = False, 401
            headers["x-verification-error"] = str(exc)
        try:
            payload: object = orjson.loads(body)
        except orjson.JSONDecodeError:
            payload = body.decode(errors="replace")
        line = {
            "verified": verified,
            "webhook_id": headers.get("webhook-id"),
            "path": request.url.path,
            "body": payload,
        }
        if not verified:
            line["error"] = headers["x-verification-error"]
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
        sys.stdout.flush()
        return Response(status_code=status)

    return Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])


def run(port: int, secret: str | None) -> int:
    secret = secret or generate_secret()
    print(
        f"receiving webhooks on http://127.0.0.1:{port}/hooks\ndestination secret: {secret}\n",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(create_app(secret), host="127.0.0.1", port=port, log_level="warning")
    return 0
