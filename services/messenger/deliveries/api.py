"""``/v1/deliveries``: what happened to each action, with every attempt; replay (admin)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.messenger.context import MessengerDep
from services.messenger.deliveries import queries
from services.messenger.deliveries.models import Delivery, DeliveryAttempt
from services.messenger.deliveries.schemas import (
    AttemptOut,
    DeliveryOut,
    DeliveryPage,
    ReplayFilter,
    ReplayResult,
    StatusName,
)
from services.messenger.deliveries.status import REPLAYABLE
from shared.db import transaction
from shared.errors import Conflict, NotFound
from shared.http.auth import AdminDep
from shared.http.pages import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1/deliveries", tags=["deliveries"], dependencies=[AdminDep])


def _out(row: Delivery, attempts: list[DeliveryAttempt]) -> DeliveryOut:
    return DeliveryOut(
        id=row.id,
        action_id=row.action_id,
        customer_id=row.customer_key,
        channel=row.channel,
        destination_id=row.destination_id,
        rule=row.rule,
        template=row.template,
        status=row.status,
        attempt_count=row.attempt_count,
        next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        provider_status=row.provider_status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivered_at=row.delivered_at,
        erased_at=row.erased_at,
        data=row.payload,
        attempts=[
            AttemptOut(
                number=a.number,
                round=a.round,
                destination_id=a.destination_id,
                started_at=a.started_at,
                latency_ms=a.latency_ms,
                status_code=a.status_code,
                outcome=a.outcome,
                error=a.error,
                response_body=a.response_body,
            )
            for a in attempts
        ],
    )


@router.get("", summary="List deliveries, newest first, each with every attempt")
async def list_deliveries(
    ctx: MessengerDep,
    status: Annotated[StatusName | None, Query()] = None,
    customer_id: Annotated[str | None, Query()] = None,
    destination_id: Annotated[str | None, Query()] = None,
    action_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> DeliveryPage:
    flt = queries.DeliveryFilter(status, customer_id, destination_id, action_id)
    async with ctx.sessions() as session:
        found = await queries.page(session, flt, limit=limit + 1, before=decode_cursor(cursor))
    more = len(found) > limit
    found = found[:limit]
    last = found[-1][0] if found else None
    return DeliveryPage(
        items=[_out(row, attempts) for row, attempts in found],
        next_cursor=encode_cursor(last.created_at, last.id) if more and last else None,
    )


@router.get(
    "/{delivery_id}",
    summary="Get a delivery with every attempt",
    responses={404: {"description": "no delivery with this id"}},
)
async def get_delivery(delivery_id: uuid.UUID, ctx: MessengerDep) -> DeliveryOut:
    async with ctx.sessions() as session:
        found = await queries.get(session, delivery_id)
    if found is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    return _out(*found)


@router.post(
    "/{delivery_id}/replay",
    status_code=202,
    summary="Replay a delivery now (same webhook-id, a fresh retry schedule)",
    responses={
        404: {"description": "no delivery with this id"},
        409: {"description": "pending, in flight, or erased: nothing to replay"},
    },
)
async def replay_delivery(delivery_id: uuid.UUID, ctx: MessengerDep) -> DeliveryOut:
    now = datetime.now(UTC)
    async with transaction(ctx.sessions) as session:
        replayed = await queries.replay_one(session, delivery_id, now=now)
        found = await queries.get(session, delivery_id)
    if found is None:
        raise NotFound(f"no delivery with id {delivery_id}")
    if not replayed:
        row = found[0]
        allowed = ", ".join(s.value for s in REPLAYABLE)
        raise Conflict(
            f"delivery is {row.status}"
            + (" (erased)" if row.payload is None else "")
            + f"; replay takes {allowed}, not while an attempt is in flight",
            code="not_replayable",
        )
    ctx.wake()
    return _out(*found)


@router.post(
    "/replay",
    status_code=202,
    summary="Replay every delivery matching a filter (status, destination, customer, time)",
)
async def replay_deliveries(body: ReplayFilter, ctx: MessengerDep) -> ReplayResult:
    async with transaction(ctx.sessions) as session:
        count = await queries.replay_matching(
            session,
            statuses=list(body.status),
            destination_id=body.destination_id,
            customer_key=body.customer_id,
            created_from=body.created_from,
            created_to=body.created_to,
            limit=body.limit,
            now=datetime.now(UTC),
        )
    if count:
        ctx.wake()
    return ReplayResult(replayed=count)
