"""Rejected input: what ingest refused, why, and the body as it came."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.security import SessionDep
from services.console.web import ApiDep, render

router = APIRouter(prefix="/rejected", tags=["console"])


def _since(value: str) -> str:
    try:
        day = datetime.fromisoformat(value).date()
    except ValueError:
        return ""
    return datetime(day.year, day.month, day.day, tzinfo=UTC).isoformat()


@router.get("", response_class=HTMLResponse)
async def list_rejected(
    request: Request,
    _: SessionDep,
    api: ApiDep,
    source: str = "",
    since: str = "",
    cursor: str = "",
) -> Response:
    page = await api.get(
        "ingest",
        "/v1/rejected",
        source=source.strip(),
        since=_since(since) if since else "",
        cursor=cursor,
        limit=50,
    )
    return render(
        request,
        "rejected.html",
        rejected=page["items"],
        next_cursor=page["next_cursor"],
        source=source,
        since=since,
    )
