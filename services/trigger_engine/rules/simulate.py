"""``POST /v1/rules/{key}/simulate``: stored history through one rule, on a virtual clock.

The core's :class:`~services.trigger_engine.core.simulate.Simulator` plays the engine in
memory (no database writes, nothing sent); events are read from the event store in event
time order and the virtual clock follows event time: each event is processed at its own
``timestamp`` and every wait fires at its due time in between, as if the engine had seen
each event the moment it happened (late arrivals are not replayed as late). The current send
policy applies, with caps counting this rule's own sends only. The CPU-bound
replay runs in a worker thread so the service stays responsive.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.effects import (
    Converted,
    EmitAction,
    HeldOut,
    RunCompleted,
    RunExited,
    RunStarted,
    SendDeferred,
    SendSkipped,
)
from services.trigger_engine.core.lifecycle import LifecycleModel
from services.trigger_engine.core.policy import NO_POLICY, SendPolicy
from services.trigger_engine.core.rules import Rule
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from services.trigger_engine.rules.schemas import SendsOnDay, SimulationOut
from services.trigger_engine.stream.rows import decode_log
from shared.envelope import Event, decode_plain_event

DEFAULT_WINDOW = timedelta(days=7)

_HISTORY = text(
    "SELECT customer_key, payload::text FROM engine.events "
    "WHERE timestamp >= :start AND timestamp < :end ORDER BY timestamp, event_id LIMIT :limit"
)
_LOG = text(
    "SELECT customer_key, records FROM engine.event_log WHERE last_at >= :start AND first_at < :end"
)


async def load_history(
    session: AsyncSession, *, start: datetime, end: datetime, limit: int
) -> tuple[list[Event], bool]:
    """Stored events in ``[start, end)`` in event time order, re-keyed to their resolved
    customer: the commerce events of ``engine.events`` and the others of
    ``engine.event_log``."""
    params = {"start": start, "end": end, "limit": limit + 1}
    events = [
        msgspec.structs.replace(decode_plain_event(payload.encode()), customer_key=key)
        for key, payload in await session.execute(_HISTORY, params)
    ]
    for key, records in await session.execute(_LOG, params):
        events.extend(
            msgspec.structs.replace(event, customer_key=key)
            for event in decode_log(records)
            if start <= event.timestamp < end
        )
    events.sort(key=lambda e: (e.timestamp, e.event_id))
    return events[:limit], len(events) > limit


def simulate(
    rule: Rule,
    lifecycle: LifecycleModel,
    events: Sequence[Event],
    *,
    start: datetime,
    end: datetime,
    truncated: bool,
    sample: int,
    policy: SendPolicy = NO_POLICY,
) -> SimulationOut:
    # A backtest asks what the rule would do if it ran, so a disabled rule is tried as on.
    trial = rule if rule.enabled else rule.model_copy(update={"enabled": True})
    simulator = Simulator(rules=RuleSet.of([trial]), lifecycle=lifecycle, policy=policy)
    for event in events:
        simulator.feed(event, now=event.timestamp)
    simulator.advance_to(end)
    effects = simulator.effects
    actions = [e for e in effects if isinstance(e, EmitAction)]
    per_day = Counter(a.created_at.astimezone(UTC).date() for a in actions)
    return SimulationOut(
        rule=rule.key,
        version=rule.version,
        from_=start,
        to=end,
        events=len(events),
        customers=len(simulator.states),
        entered=sum(isinstance(e, RunStarted) for e in effects),
        sent=len(actions),
        held_out=sum(isinstance(e, HeldOut) for e in effects),
        skipped=sum(isinstance(e, SendSkipped) for e in effects),
        deferred=sum(isinstance(e, SendDeferred) for e in effects),
        exited=sum(isinstance(e, RunExited) for e in effects),
        completed=sum(isinstance(e, RunCompleted) for e in effects),
        converted=sum(isinstance(e, Converted) for e in effects),
        truncated=truncated,
        reached=len({a.customer_key for a in actions}),
        sends_per_day=[SendsOnDay(day=day, sent=n) for day, n in sorted(per_day.items())],
        actions=[{**a.data(), "at": a.created_at.isoformat()} for a in actions[:sample]],
    )


async def run_simulation(
    session: AsyncSession,
    rule: Rule,
    lifecycle: LifecycleModel,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    sample: int,
    policy: SendPolicy = NO_POLICY,
) -> SimulationOut:
    until = end or datetime.now(UTC)
    since = start or until - DEFAULT_WINDOW
    events, truncated = await load_history(session, start=since, end=until, limit=limit)
    return await asyncio.to_thread(
        simulate,
        rule,
        lifecycle,
        events,
        start=since,
        end=until,
        truncated=truncated,
        sample=sample,
        policy=policy,
    )
