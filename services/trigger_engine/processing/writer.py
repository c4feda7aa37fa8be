"""Persisting a :class:`~.fold.Fold`: states and every effect, a few statements per batch.

Each table gets one ``INSERT … SELECT FROM unnest(…)`` (or ``UPDATE``/``DELETE … = ANY``)
for the whole batch, never a statement per event. Rows are keyed by ids the core derived
from their causes, and ``ON CONFLICT DO NOTHING`` makes writing a replayed batch a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.effects import (
    CancelTimer,
    EmitAction,
    SetTimer,
    StageTransition,
)
from services.trigger_engine.core.state import encode_state
from services.trigger_engine.outbox import repository as outbox
from services.trigger_engine.partitions.watermark import release_at
from services.trigger_engine.processing.cache import Versioned
from services.trigger_engine.processing.fold import Fold
from services.trigger_engine.processing.loader import ConcurrentChange
from services.trigger_engine.runs.outcomes import SendOutcome, send_outcomes
from services.trigger_engine.runs.repository import run_rows, write_run_rows
from shared.ids import derive_id

_STATE_COLUMNS = (
    "CAST(:keys AS text[]), CAST(:states AS bytea[]), CAST(:stages AS text[]), "
    "CAST(:entered AS timestamptz[]), CAST(:users AS text[]), CAST(:orders AS int[]), "
    "CAST(:revenue AS float8[]), CAST(:first_seen AS timestamptz[]), "
    "CAST(:last_seen AS timestamptz[]), CAST(:first_order AS timestamptz[]), "
    "CAST(:last_order AS timestamptz[])) AS x(k, s, st, se, u, o, rv, fs, ls, fo, lo)"
)

# Both return the row version (xmin: this transaction) the state cache keys on.
_UPDATE_STATES = text(
    "UPDATE engine.customers AS c SET state = x.s, stage = x.st, "
    "stage_entered_at = x.se, user_id = x.u, orders = x.o, revenue = x.rv, "
    "first_seen_at = x.fs, last_seen_at = x.ls, first_order_at = x.fo, last_order_at = x.lo, "
    "updated_at = CAST(:now AS timestamptz) "
    f"FROM unnest({_STATE_COLUMNS} "
    "WHERE c.customer_key = x.k RETURNING c.customer_key, c.xmin::text::bigint"
)

_INSERT_STATES = text(
    "INSERT INTO engine.customers (customer_key, state, stage, stage_entered_at, user_id, "
    "orders, revenue, first_seen_at, last_seen_at, first_order_at, last_order_at, updated_at) "
    "SELECT k, s, st, se, u, o, rv, fs, ls, fo, lo, CAST(:now AS timestamptz) "
    f"FROM unnest({_STATE_COLUMNS} "
    "RETURNING customer_key, xmin::text::bigint"
)

_DELETE_STATES = text(
    "DELETE FROM engine.customers WHERE customer_key = ANY(CAST(:keys AS text[]))"
)

_UPSERT_TIMERS = text(
    "INSERT INTO engine.timers (timer_id, customer_key, kind, run_id, rule_key, due_at, "
    "release_at) "
    "SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:keys AS text[]), CAST(:kinds AS text[]), "
    "CAST(:runs AS text[]), CAST(:rules AS text[]), CAST(:due AS timestamptz[]), "
    "CAST(:release AS timestamptz[])) "
    "ON CONFLICT (timer_id) DO UPDATE SET customer_key = excluded.customer_key, "
    "kind = excluded.kind, run_id = excluded.run_id, rule_key = excluded.rule_key, "
    "due_at = excluded.due_at, release_at = excluded.release_at, claimed_by = NULL, "
    "claimed_until = NULL"
)

_DELETE_TIMERS = text("DELETE FROM engine.timers WHERE timer_id = ANY(CAST(:ids AS text[]))")

_INSERT_TRANSITIONS = text(
    "INSERT INTO engine.stage_transitions (id, customer_key, from_stage, to_stage, at, cause, "
    "cause_event, cause_message_id, reactivated) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:keys AS text[]), CAST(:froms AS text[]), "
    "CAST(:tos AS text[]), CAST(:ats AS timestamptz[]), CAST(:causes AS text[]), "
    "CAST(:events AS text[]), CAST(:messages AS text[]), CAST(:reactivated AS bool[])) "
    "ON CONFLICT (id) DO NOTHING"
)

_INSERT_LINKS = text(
    "INSERT INTO engine.identity_links (anonymous_id, customer_key, linked_at) "
    "SELECT a, k, CAST(:now AS timestamptz) "
    "FROM unnest(CAST(:anonymous AS text[]), CAST(:keys AS text[])) AS x(a, k) "
    "ON CONFLICT (anonymous_id) DO UPDATE SET customer_key = excluded.customer_key"
)

#: Rows of a merged-away customer that follow it to the customer it was merged into.
_REKEY_TABLES = ("events", "stage_transitions", "run_events", "outbox", "identity_links")


@dataclass
class Written:
    """What a write produced, for metrics and wake-ups."""

    actions: int = 0
    #: (from, to, cause) of each stage transition, for the counter once committed
    transitions: list[tuple[str, str, str]] = field(default_factory=list)
    merges: int = 0
    earliest_timer: datetime | None = None
    action_rules: list[str] = field(default_factory=list)
    #: sends held out, skipped or deferred, counted once committed
    send_outcomes: list[SendOutcome] = field(default_factory=list)
    #: for the state cache, once committed (see :mod:`.cache`)
    states: dict[str, Versioned] = field(default_factory=dict)


def transition_id(effect: StageTransition) -> str:
    return str(
        derive_id(
            "transition",
            effect.customer_key,
            effect.from_stage or "-",
            effect.to_stage,
            effect.at.isoformat(),
        )
    )


async def write_fold(
    session: AsyncSession,
    fold: Fold,
    *,
    grace: timedelta,
    fired_timers: Iterable[str] = (),
) -> Written:
    """Persist the fold: states, merges, links, timers, transitions, outbox, run records.

    ``grace`` is how long a timer already due when its trigger arrived waits for the rest of
    the late burst (see :func:`~..partitions.watermark.release_at`)."""
    written = Written()
    written.states = await _write_states(session, fold)
    timers: dict[str, SetTimer | None] = dict.fromkeys(fired_timers)
    transitions: list[StageTransition] = []
    actions: list[EmitAction] = []
    for effect in fold.effects:
        if isinstance(effect, SetTimer):
            timers[effect.timer_id] = effect
        elif isinstance(effect, CancelTimer):
            timers[effect.timer_id] = None
        elif isinstance(effect, StageTransition):
            transitions.append(effect)
        elif isinstance(effect, EmitAction):
            actions.append(effect)
    await _write_timers(session, timers, written, grace=grace)
    if transitions:
        await session.execute(
            _INSERT_TRANSITIONS,
            {
                "ids": [transition_id(t) for t in transitions],
                "keys": [t.customer_key for t in transitions],
                "froms": [t.from_stage for t in transitions],
                "tos": [t.to_stage for t in transitions],
                "ats": [t.at for t in transitions],
                "causes": [t.cause for t in transitions],
                "events": [t.cause_event for t in transitions],
                "messages": [t.cause_message_id for t in transitions],
                "reactivated": [t.reactivated for t in transitions],
            },
        )
        written.transitions = [(t.from_stage or "none", t.to_stage, t.cause) for t in transitions]
    if actions:
        new = await outbox.add_actions(session, actions)
        written.actions = len(new)
        written.action_rules = [a.rule for a in actions if a.action_id in new]
    await write_run_rows(session, run_rows(fold.effects))
    written.send_outcomes = send_outcomes(fold.effects)
    await _write_identity(session, fold)
    written.merges = len(fold.merged)
    return written


async def _write_states(session: AsyncSession, fold: Fold) -> dict[str, Versioned]:
    """Write the changed states; return every state the fold holds that is now exactly its
    committed row (once this transaction commits), with that row's version."""
    keys = sorted(fold.changed - fold.removed)
    versions = {k: v for k, v in fold.versions.items() if k in fold.states}
    updated = [k for k in keys if k in fold.existing]
    if updated:
        rows = await session.execute(_UPDATE_STATES, _state_params(fold, updated))
        versions.update({key: version for key, version in rows})
    created = [k for k in keys if k not in fold.existing]
    if created:
        try:
            rows = await session.execute(_INSERT_STATES, _state_params(fold, created))
        except IntegrityError as exc:
            if getattr(exc.orig, "sqlstate", None) != "23505":
                raise
            # Created by another transaction after we found it missing: our fold started
            # from an empty state and would overwrite theirs.
            raise ConcurrentChange("a customer of this batch was created concurrently") from exc
        versions.update({key: version for key, version in rows})
    gone = sorted(fold.removed & fold.existing)
    if gone:
        await session.execute(_DELETE_STATES, {"keys": gone})
    return {key: Versioned(version, fold.states[key]) for key, version in versions.items()}


def _state_params(fold: Fold, keys: list[str]) -> dict[str, Any]:
    states = [fold.states[k] for k in keys]
    profiles = [s.profile for s in states]
    return {
        "now": fold.now,
        "keys": keys,
        "states": [encode_state(s) for s in states],
        "stages": [s.stage for s in states],
        "entered": [s.stage_entered_at for s in states],
        "users": [p.user_id for p in profiles],
        "orders": [p.orders for p in profiles],
        "revenue": [p.revenue for p in profiles],
        "first_seen": [p.first_seen_at for p in profiles],
        "last_seen": [p.last_seen_at for p in profiles],
        "first_order": [p.first_order_at for p in profiles],
        "last_order": [p.last_order_at for p in profiles],
    }


async def _write_timers(
    session: AsyncSession,
    timers: dict[str, SetTimer | None],
    written: Written,
    *,
    grace: timedelta,
) -> None:
    to_set = [t for t in timers.values() if t is not None]
    to_delete = [timer_id for timer_id, t in timers.items() if t is None]
    if to_delete:
        await session.execute(_DELETE_TIMERS, {"ids": to_delete})
    if to_set:
        await session.execute(
            _UPSERT_TIMERS,
            {
                "ids": [t.timer_id for t in to_set],
                "keys": [t.customer_key for t in to_set],
                "kinds": [t.kind for t in to_set],
                "runs": [t.run_id for t in to_set],
                "rules": [t.rule_key for t in to_set],
                "due": [t.due_at for t in to_set],
                "release": [release_at(t.due_at, t.arrived_at, grace=grace) for t in to_set],
            },
        )
        written.earliest_timer = min(t.due_at for t in to_set)


async def _write_identity(session: AsyncSession, fold: Fold) -> None:
    if fold.merged:
        sources = [source for source, _ in fold.merged]
        targets = [fold.final_key(source) for source in sources]
        for table in _REKEY_TABLES:
            await session.execute(
                text(
                    f"UPDATE engine.{table} AS t SET customer_key = x.dst "
                    "FROM unnest(CAST(:src AS text[]), CAST(:dst AS text[])) AS x(src, dst) "
                    # The ANY makes the plan an index lookup of the few rows to move; the
                    # join alone can be planned as a scan of the whole (event) table.
                    "WHERE t.customer_key = x.src AND t.customer_key = ANY(CAST(:src AS text[]))"
                ),
                {"src": sources, "dst": targets},
            )
    if fold.new_links:
        anonymous = sorted(fold.new_links)
        await session.execute(
            _INSERT_LINKS,
            {
                "now": fold.now,
                "anonymous": anonymous,
                "keys": [fold.final_key(a) for a in anonymous],
            },
        )
