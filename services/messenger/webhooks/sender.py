"""One signed attempt: sign, POST, classify what happened (never raises for the receiver's
or the network's doing)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

import httpx

from services.messenger.delivery import signing
from services.messenger.delivery.retry import (
    AttemptResult,
    HttpResponse,
    TransportError,
    TransportErrorKind,
)
from services.messenger.delivery.urlguard import UnsafeDestination, check_url
from services.messenger.webhooks.transport import UnsafeConnection


@dataclass(frozen=True, slots=True)
class AttemptReport:
    result: AttemptResult
    started_at: datetime
    latency_ms: float
    response_excerpt: str | None

    @property
    def status_code(self) -> int | None:
        return self.result.status_code if isinstance(self.result, HttpResponse) else None

    @property
    def error(self) -> str | None:
        if isinstance(self.result, TransportError):
            return f"{self.result.kind.value}: {self.result.detail}"[:1000]
        return None


async def send_signed(
    client: httpx.AsyncClient,
    *,
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    timeout: float,
    allow_private: bool,
    excerpt_bytes: int,
    now: datetime,
) -> AttemptReport:
    """POST ``body`` to ``url`` signed with ``secret`` (timestamp = ``now``).

    The URL is checked again before the attempt (a destination saved under other settings,
    or a rule changed since), and every connection is checked by the transport.
    """
    started = time.perf_counter()

    def report(result: AttemptResult, excerpt: str | None = None) -> AttemptReport:
        latency = (time.perf_counter() - started) * 1000.0
        return AttemptReport(result, now, latency, excerpt)

    try:
        target = check_url(url, allow_private=allow_private)
    except UnsafeDestination as exc:
        return report(TransportError(TransportErrorKind.UNSAFE_DESTINATION, exc.message))
    headers = signing.build_headers(secret, msg_id, int(now.timestamp()), body)
    try:
        # httpx's timeouts are per phase; the attempt as a whole gets ``timeout`` too.
        async with asyncio.timeout(timeout):
            request = client.build_request(
                "POST", target.url, content=body, headers=headers, timeout=httpx.Timeout(timeout)
            )
            response = await client.send(request, stream=True)
            try:
                excerpt = await _excerpt(response, excerpt_bytes)
            finally:
                await response.aclose()
    except TimeoutError:
        return report(TransportError(TransportErrorKind.TIMEOUT, f"no answer in {timeout:g}s"))
    except UnsafeConnection as exc:
        return report(TransportError(TransportErrorKind.UNSAFE_DESTINATION, exc.message))
    except httpx.TimeoutException as exc:
        return report(TransportError(TransportErrorKind.TIMEOUT, _describe(exc)))
    except (httpx.ConnectError, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        return report(TransportError(TransportErrorKind.CONNECTION, _describe(exc)))
    except httpx.HTTPError as exc:
        return report(TransportError(TransportErrorKind.OTHER, _describe(exc)))
    return report(HttpResponse(response.status_code, response.headers.get("retry-after")), excerpt)


async def _excerpt(response: httpx.Response, limit: int) -> str | None:
    """The first ``limit`` bytes of the answer (the rest is not read)."""
    if limit <= 0:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    data = b"".join(chunks)[:limit]
    return data.decode("utf-8", errors="replace") if data else None


def _describe(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:500]
