"""``GET /v1/rejected``: what ingest refused, with every reason and the body (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.ingest.context import IngestDep
from services.ingest.rejected import repository
from services.ingest.rejected.schemas import RejectedOut
from shared.http.auth import AdminDep
from shared.http.pages import Page, decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/rejected", tags=["rejected input"], dependencies=[AdminDep])


@router.get(
    "",
    summary="Rejected input, newest first (kept CLM_REJECTED_RETENTION_DAYS days)",
)
async def list_rejected(
    ctx: IngestDep,
    source: Annotated[str | None, Query(description="only this source (storefront)")] = None,
    since: Annotated[datetime | None, Query(description="rejected at or after")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Page[RejectedOut]:
    async with ctx.sessions() as session:
        rows = await repository.page(
            session, source=source, since=since, before=decode_cursor(cursor), limit=limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].rejected_at, rows[-1].id) if more and rows else None
    return Page[RejectedOut](items=[RejectedOut.of(r) for r in rows], next_cursor=next_cursor)
