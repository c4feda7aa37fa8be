"""Reading a customer (state, history, timeline) and erasing one. Callers own transactions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.state import CustomerState, decode_state
from services.trigger_engine.customers.schemas import (
    TimelineItem,
    TransitionOut,
)
from services.trigger_engine.stream.handoff import partition_of
from services.trigger_engine.stream.rows import decode_log
from shared.errors import NotFound

_STATE = text("SELECT customer_key, state FROM engine.customers WHERE customer_key = :key")
_LINK = text("SELECT customer_key FROM engine.identity_links WHERE anonymous_id = :id")
_HISTORY = text(
    "SELECT from_stage, to_stage, at, cause, cause_event, cause_message_id, reactivated "
    "FROM engine.stage_transitions WHERE customer_key = :key ORDER BY at, to_stage"
)
_EVENTS = text(
    "SELECT timestamp, event_id, call, event, message_id, payload->'properties', "
    "payload->'traits' FROM engine.events WHERE customer_key = :key "
    "ORDER BY timestamp DESC LIMIT :limit"
)
# Each row holds one or more events (a checkpoint's): at most ``limit`` rows are needed.
_EVENT_LOG = text(
    "SELECT records FROM engine.event_log WHERE customer_key = :key "
    "ORDER BY last_at DESC LIMIT :limit"
)
# Cancellations (kind 'cancel') are not timeline items: the run's "exited" record is.
_ACTIONS = text(
    "SELECT created_at, id, kind, payload::text, published_at FROM engine.outbox "
    "WHERE customer_key = :key AND kind <> 'cancel' ORDER BY created_at DESC LIMIT :limit"
)
# A send is on the timeline as its action while the outbox keeps the row; once retention
# deleted it (CLM_OUTBOX_RETENTION_DAYS), its "sent" run record stands in for it.
_RUNS = text(
    "SELECT r.at, r.run_id, r.rule_key, r.rule_version, r.kind, r.holdout, r.step, r.detail "
    "FROM engine.run_events AS r WHERE r.customer_key = :key AND (r.kind <> 'sent' OR NOT "
    "EXISTS (SELECT 1 FROM engine.outbox AS o WHERE o.id = r.detail)) "
    "ORDER BY r.at DESC, r.id LIMIT :limit"
)

#: Where a run record goes among its run's items at the same instant: the run starts, its
#: steps act in step order (held out, skipped, deferred, sent as an action; an exit after
#: the steps before it), then it completes or converts.
_RUN_PHASE: Final = {
    "started": 0,
    "held_out": 1,
    "sent": 1,
    "skipped": 1,
    "deferred": 1,
    "exited": 1,
    "completed": 2,
    "converted": 3,
}
#: The name ``detail`` has in a run item, per kind.
_RUN_DETAIL: Final = {
    "started": "trigger_message_id",
    "held_out": "action_id",
    "sent": "action_id",
    "skipped": "reason",
    "deferred": "until",
    "exited": "reason",
    "converted": "message_id",
}
#: Item order at the same instant: what happened, what it changed, what the runs did.
_TYPE_ORDER: Final = {"event": 0, "stage": 1, "run": 2, "action": 2, "erasure": 3}


async def resolve(session: AsyncSession, customer_id: str) -> str | None:
    """The customer key for a user id, customer key or merged anonymous id."""
    row = (await session.execute(_STATE, {"key": customer_id})).first()
    if row is not None:
        return customer_id
    linked: str | None = await session.scalar(_LINK, {"id": customer_id})
    return linked


async def load(session: AsyncSession, customer_id: str) -> CustomerState:
    key = await resolve(session, customer_id)
    row = None if key is None else (await session.execute(_STATE, {"key": key})).first()
    if row is None:
        raise NotFound(f"no customer {customer_id!r}")
    return decode_state(row[1])


async def stage_history(session: AsyncSession, key: str) -> list[TransitionOut]:
    rows = await session.execute(_HISTORY, {"key": key})
    return [
        TransitionOut(
            from_stage=f,
            to_stage=t,
            at=at,
            cause=cause,
            cause_event=event,
            cause_message_id=message,
            reactivated=reactivated,
        )
        for f, t, at, cause, event, message, reactivated in rows
    ]


def _run_item(
    at: datetime,
    run_id: str,
    rule_key: str,
    rule_version: int,
    kind: str,
    holdout: bool,
    step: int | None,
    detail: str | None,
) -> TimelineItem:
    data: dict[str, Any] = {
        "run_id": run_id,
        "rule": rule_key,
        "rule_version": rule_version,
        "kind": kind,
        "step": step,
        "holdout": holdout,
        "detail": detail,
    }
    name = _RUN_DETAIL.get(kind)
    if name is not None:
        data[name] = detail
    return TimelineItem(at=at, type="run", data=data)


def _order(item: TimelineItem) -> tuple[datetime, int, int, int, int]:
    """Time, then type (see _TYPE_ORDER); actions and run records by phase and step."""
    phase = step = last = 0
    if item.type in ("run", "action"):
        kind = item.data.get("kind") if item.type == "run" else "sent"
        phase = _RUN_PHASE.get(str(kind), 1)
        raw_step = item.data.get("step")
        step = raw_step if isinstance(raw_step, int) else 0
        last = int(kind == "exited")
    return item.at, _TYPE_ORDER[item.type], phase, step, last


async def timeline(session: AsyncSession, key: str, *, limit: int) -> list[TimelineItem]:
    """Events, stage transitions, actions and run records (started, held out, skipped,
    deferred, exited, completed, converted) of ``key``, oldest first (newest ``limit`` each)."""
    events: list[tuple[datetime, str, str, str | None, str, Any, Any]] = [
        (at, str(event_id), call, name, message_id, properties, traits)
        for at, event_id, call, name, message_id, properties, traits in await session.execute(
            _EVENTS, {"key": key, "limit": limit}
        )
    ]
    for (records,) in await session.execute(_EVENT_LOG, {"key": key, "limit": limit}):
        events.extend(
            (e.timestamp, e.event_id, e.call, e.event, e.message_id, e.properties, e.traits)
            for e in decode_log(records)
        )
    events.sort(key=lambda e: e[0], reverse=True)
    items: list[TimelineItem] = []
    for at, event_id, call, name, message_id, properties, traits in events[:limit]:
        data: dict[str, Any] = {
            "event_id": event_id,
            "call": call,
            "event": name,
            "message_id": message_id,
            "properties": properties or {},
        }
        if traits:
            data["traits"] = traits
        items.append(TimelineItem(at=at, type="event", data=data))
    for transition in await stage_history(session, key):
        items.append(
            TimelineItem(at=transition.at, type="stage", data=transition.model_dump(by_alias=True))
        )
    for at, outbox_id, kind, payload, published_at in await session.execute(
        _ACTIONS, {"key": key, "limit": limit}
    ):
        record = orjson.loads(payload)
        body = record.get("data", {}) if kind == "action" else record
        items.append(
            TimelineItem(
                at=at,
                type="action" if kind == "action" else "erasure",
                data={"id": outbox_id, "published_at": published_at, **body},
            )
        )
    for row in await session.execute(_RUNS, {"key": key, "limit": limit}):
        items.append(_run_item(*row))
    items.sort(key=_order)
    return items


_PARTITIONS = text("SELECT count(*) FROM engine.partitions WHERE topic = :topic")
_REQUEST = text(
    "INSERT INTO engine.erasures (erasure_id, customer_key, partition, requested_at) "
    "VALUES (:id, :key, :partition, :now)"
)
_DONE = text("SELECT done_at, erased FROM engine.erasures WHERE erasure_id = :id")


async def request_erasure(
    session: AsyncSession, customer_id: str, *, topic: str, partitions: int, now: datetime
) -> tuple[uuid.UUID, str]:
    """Ask the customer's owner to erase them: the owner deletes everything held for the
    customer at its next checkpoint and queues an ``ErasureV1`` for the messenger. Returns
    (erasure id, customer key). ``partitions``: the topic's partition count, for when no
    owner has recorded it yet."""
    key = await resolve(session, customer_id) or customer_id
    partitions = int(await session.scalar(_PARTITIONS, {"topic": topic}) or partitions)
    erasure_id = uuid.uuid4()
    await session.execute(
        _REQUEST,
        {
            "id": erasure_id,
            "key": key,
            "partition": partition_of(key, partitions),
            "now": now,
        },
    )
    return erasure_id, key


async def erasure_done(session: AsyncSession, erasure_id: uuid.UUID) -> dict[str, int] | None:
    """What the erasure deleted (rows per table), or None while it is pending."""
    row = (await session.execute(_DONE, {"id": erasure_id})).first()
    if row is None or row[0] is None:
        return None
    return {table: int(count) for table, count in (row[1] or {}).items()}
