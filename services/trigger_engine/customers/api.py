"""The customers API: profile with stage history, timeline, erasure (admin token)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.trigger_engine.context import EngineDep
from services.trigger_engine.core.plain import json_view
from services.trigger_engine.core.state import CustomerState
from services.trigger_engine.customers import repository, search
from services.trigger_engine.customers.schemas import (
    CartOut,
    CustomerOut,
    CustomerSummary,
    ErasureOut,
    MetricsOut,
    NpsOut,
    RunOut,
    TimelineOut,
    TimerOut,
    TransitionOut,
)
from services.trigger_engine.partitions.watermark import release_at
from shared.db import transaction
from shared.errors import NotFound
from shared.http.auth import AdminDep
from shared.http.pages import Page, decode_text_cursor, encode_text_cursor

router = APIRouter(prefix="/v1/customers", tags=["customers"], dependencies=[AdminDep])

_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "no customer with this id"}}


def _nps(state: CustomerState) -> NpsOut:
    scores = [answer.score for answer in state.profile.nps]
    if not scores:
        return NpsOut(responses=0, last_score=None, score=None)
    promoters = sum(s >= 9 for s in scores)
    detractors = sum(s <= 6 for s in scores)
    return NpsOut(
        responses=len(scores),
        last_score=scores[-1],
        score=round(100 * (promoters - detractors) / len(scores), 1),
    )


def customer_out(
    state: CustomerState, history: list[TransitionOut], *, grace: timedelta
) -> CustomerOut:
    p = state.profile
    return CustomerOut(
        id=p.user_id or state.customer_key,
        customer_key=state.customer_key,
        user_id=p.user_id,
        anonymous_ids=p.anonymous_ids,
        traits=p.traits,
        stage=state.stage,
        stage_entered_at=state.stage_entered_at,
        stage_history=history,
        metrics=MetricsOut(
            orders=p.orders,
            revenue=p.revenue,
            aov=p.aov,
            first_order_at=p.first_order_at,
            last_order_at=p.last_order_at,
            first_seen_at=p.first_seen_at,
            last_seen_at=p.last_seen_at,
            cart_adds=p.cart_adds,
            checkouts=p.checkouts,
            nps=_nps(state),
        ),
        cart=CartOut(
            products=[json_view(item) for item in p.cart.products],
            value=p.cart.value,
            updated_at=p.cart.updated_at,
        ),
        runs=[
            RunOut(
                run_id=run.run_id,
                rule=run.rule_key,
                rule_version=run.rule_version,
                status=run.status,
                step=run.step_index,
                holdout=run.holdout,
                started_at=run.started_at,
                ended_at=run.ended_at,
                converted=run.converted,
                trigger=json_view(run.trigger),
            )
            for run in sorted(state.runs.values(), key=lambda r: r.started_at)
        ],
        timers=[
            TimerOut(
                timer_id=t.timer_id,
                kind=t.kind,
                due_at=t.due_at,
                release_at=release_at(t.due_at, t.arrived_at, grace=grace),
                rule=t.rule_key,
                run_id=t.run_id,
            )
            for t in sorted(state.timers.values(), key=lambda t: t.due_at)
        ],
        recent_sends=state.sends,
        context_timezone=p.context_timezone,
    )


@router.get(
    "",
    summary="List customers (by stage) or search them by id, email or phone prefix",
    description="`q` matches the start of the customer key, the user id or a merged "
    "anonymous id; a `q` with an `@`, or one that is a phone number, also matches the "
    "start of the customer's email address or phone number (the newest their events "
    "carried). Ordered by customer key.",
)
async def list_customers(
    ctx: EngineDep,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="id, email or phone prefix")
    ] = None,
    stage: Annotated[str | None, Query(description="only customers in this stage")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Page[CustomerSummary]:
    async with ctx.sessions() as session:
        found = await search.search(
            session,
            query=q.strip() if q else None,
            stage=stage,
            after=decode_text_cursor(cursor),
            limit=limit + 1,
        )
    more = len(found) > limit
    found = found[:limit]
    next_cursor = encode_text_cursor(found[-1].customer_key) if more and found else None
    return Page[CustomerSummary](items=found, next_cursor=next_cursor)


@router.get(
    "/{customer_id}",
    summary="Profile, traits, stage and stage history, metrics, open cart, runs",
    responses=_NOT_FOUND,
)
async def get_customer(customer_id: str, ctx: EngineDep) -> CustomerOut:
    async with ctx.sessions() as session:
        state = await repository.load(session, customer_id)
        history = await repository.stage_history(session, state.customer_key)
    return customer_out(state, history, grace=ctx.settings.late_timer_grace)


@router.get(
    "/{customer_id}/timeline",
    summary="Events, stage transitions, run records and actions, in time order",
    responses=_NOT_FOUND,
)
async def get_timeline(
    customer_id: str,
    ctx: EngineDep,
    limit: Annotated[int, Query(ge=1, le=10_000, description="newest items per kind")] = 1000,
) -> TimelineOut:
    async with ctx.sessions() as session:
        key = await repository.resolve(session, customer_id)
        if key is None:
            raise NotFound(f"no customer {customer_id!r}")
        items = await repository.timeline(session, key, limit=limit)
    return TimelineOut(customer_key=key, items=items)


@router.delete(
    "/{customer_id}",
    status_code=202,
    summary="Erase the customer: profile, events, runs, timers; the messenger is told too",
    description="The customer's owner (the engine instance that owns their partition) "
    "carries the erasure out at its next checkpoint; this waits for it up to "
    "`CLM_ERASURE_WAIT_SECONDS` and answers `status: pending` if it has not happened by "
    "then (it still will: the request is stored).",
)
async def erase_customer(customer_id: str, ctx: EngineDep) -> ErasureOut:
    settings = ctx.settings
    async with transaction(ctx.sessions) as session:
        erasure_id, key = await repository.request_erasure(
            session,
            customer_id,
            topic=settings.events_topic,
            partitions=settings.kafka_topic_partitions,
            now=datetime.now(UTC),
        )
    erased: dict[str, int] | None = None
    deadline = time.monotonic() + settings.erasure_wait_seconds
    while erased is None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        async with ctx.sessions() as session:
            erased = await repository.erasure_done(session, erasure_id)
    return ErasureOut(
        erasure_id=str(erasure_id),
        customer_key=key,
        status="pending" if erased is None else "done",
        erased=erased or {},
    )
