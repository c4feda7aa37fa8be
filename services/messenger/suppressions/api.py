"""``/v1/suppressions``: who never receives a send on a channel (admin)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response

from services.messenger.context import MessengerDep
from services.messenger.destinations.schemas import Channel
from services.messenger.suppressions import repository
from services.messenger.suppressions.rules import Kind, Subject, normalize_address
from services.messenger.suppressions.schemas import SuppressionIn, SuppressionOut, SuppressionPage
from shared.db import transaction
from shared.errors import NotFound, Unprocessable
from shared.http.auth import AdminDep
from shared.http.pages import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"], dependencies=[AdminDep])


@router.post(
    "",
    status_code=201,
    summary="Suppress a customer or an address on a channel (200 if it already was)",
    responses={200: {"description": "already suppressed", "model": SuppressionOut}},
)
async def add_suppression(
    body: SuppressionIn, ctx: MessengerDep, response: Response
) -> SuppressionOut:
    async with transaction(ctx.sessions) as session:
        row, created = await repository.add(
            session,
            body.subject(),
            reason=body.reason,
            source="api",
            note=body.note,
            now=datetime.now(UTC),
        )
    if not created:
        response.status_code = 200
    return SuppressionOut.of(row)


def _subject(channel: str | None, customer_id: str | None, address: str | None) -> Subject:
    if channel is None or (customer_id is None) == (address is None):
        raise Unprocessable("give channel and exactly one of customer_id and address")
    if customer_id is not None:
        return (channel, Kind.CUSTOMER, customer_id)
    assert address is not None
    return (channel, Kind.ADDRESS, normalize_address(channel, address))


@router.get("", summary="List suppressions, newest first")
async def list_suppressions(
    ctx: MessengerDep,
    channel: Annotated[Channel | None, Query()] = None,
    customer_id: Annotated[str | None, Query()] = None,
    address: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> SuppressionPage:
    if customer_id is not None and address is not None:
        raise Unprocessable("filter by customer_id or by address, not both")
    kind = Kind.CUSTOMER if customer_id is not None else Kind.ADDRESS if address else None
    value = customer_id
    if address is not None:
        value = normalize_address(channel or "", address)
    async with ctx.sessions() as session:
        rows = await repository.list_page(
            session,
            channel=channel,
            kind=kind,
            value=value,
            limit=limit + 1,
            before=decode_cursor(cursor),
        )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return SuppressionPage(items=[SuppressionOut.of(r) for r in rows], next_cursor=next_cursor)


@router.delete(
    "",
    status_code=204,
    summary="Lift the suppression of a customer or an address on a channel",
    responses={404: {"description": "not suppressed"}},
)
async def remove_suppression(
    ctx: MessengerDep,
    channel: Annotated[Channel, Query()],
    customer_id: Annotated[str | None, Query()] = None,
    address: Annotated[str | None, Query()] = None,
) -> Response:
    subject = _subject(channel, customer_id, address)
    async with transaction(ctx.sessions) as session:
        removed = await repository.remove(session, subject)
    if not removed:
        raise NotFound("no such suppression")
    return Response(status_code=204)


@router.delete(
    "/{suppression_id}",
    status_code=204,
    summary="Lift a suppression by id",
    responses={404: {"description": "no suppression with this id"}},
)
async def remove_suppression_by_id(suppression_id: uuid.UUID, ctx: MessengerDep) -> Response:
    async with transaction(ctx.sessions) as session:
        removed = await repository.remove_by_id(session, suppression_id)
    if not removed:
        raise NotFound(f"no suppression with id {suppression_id}")
    return Response(status_code=204)
