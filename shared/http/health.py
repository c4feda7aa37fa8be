"""``/healthz``, ``/readyz`` and ``/metrics``, mounted by every service.

``app.state.readiness`` holds named async checks (PostgreSQL, Kafka); ``/readyz`` runs them
all and answers 503 naming the ones that failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from shared.http.responses import JSONBytesResponse

Check = Callable[[], Awaitable[None]]

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _run(check: Check) -> str | None:
    try:
        async with asyncio.timeout(3):
            await check()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Readiness(BaseModel):
    status: str = Field(description="`ready`, or `unavailable` (with the 503)")
    checks: list[str] | None = Field(default=None, description="the checks run, when ready")
    failures: dict[str, str] | None = Field(
        default=None, description="each failed check with its error, when unavailable"
    )


@router.get(
    "/readyz",
    summary="PostgreSQL and Kafka are reachable",
    response_model=Readiness,
    responses={503: {"description": "a dependency is unreachable", "model": Readiness}},
)
async def readyz(request: Request) -> Response:
    checks: dict[str, Check] = getattr(request.app.state, "readiness", {})
    results = await asyncio.gather(*(_run(c) for c in checks.values()))
    failures = {name: err for name, err in zip(checks, results, strict=True) if err is not None}
    if failures or getattr(request.app.state, "stopping", False):
        return JSONBytesResponse({"status": "unavailable", "failures": failures}, status_code=503)
    return JSONBytesResponse({"status": "ready", "checks": list(checks)})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"description": "the Prometheus text exposition format"}},
)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
