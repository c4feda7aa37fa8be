"""One unit of work of a partition owner: inputs through the core, their effects booked.

Every input the owner has (an event of ``clm.events``, a hand-off record, a released timer, a
lifecycle pass's re-evaluation, an erasure) goes through the same steps: the states it needs
are in memory (the runner loaded them: :meth:`UnitOfWork.keys_for`), the core advances them
in place, and the effects become the rows of the next checkpoint, the actions to flush and
publish, and the hand-off records to send. No I/O here: the runner does it, around this.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.trigger_engine.config_cache import EngineConfig
from services.trigger_engine.core.context import StepContext
from services.trigger_engine.core.effects import (
    CancelActions,
    Effect,
    EmitAction,
    StageTransition,
)
from services.trigger_engine.core.engine import apply
from services.trigger_engine.core.fold import advance
from services.trigger_engine.core.inputs import LifecycleChanged, TimerFired
from services.trigger_engine.core.merging import merge_states
from services.trigger_engine.core.state import CustomerState
from services.trigger_engine.partitions.watermark import release_at
from services.trigger_engine.runs.outcomes import SendOutcome, send_outcomes
from services.trigger_engine.runs.repository import run_rows
from services.trigger_engine.stream.handoff import (
    Forward,
    MergeRequest,
    Record,
    StateTransfer,
    partition_of,
)
from services.trigger_engine.stream.partition import PartitionState
from services.trigger_engine.stream.rows import (
    COMMERCE_EVENTS,
    LogRow,
    cancel_row,
    event_row,
    outbox_row,
    transition_row,
)
from shared.envelope import ErasureV1, Event


@dataclass
class UnitOfWork:
    config: EngineConfig
    now: datetime
    grace: timedelta
    #: partitions of clm.events (for the partition of a key)
    partitions: int
    #: outbox rows of actions (and of cancellations, after the actions they cancel), to
    #: flush and publish right after this unit
    actions: list[tuple[Any, ...]] = field(default_factory=list)
    #: (key, record) to send on the hand-off topic
    handoffs: list[tuple[str, Record]] = field(default_factory=list)
    #: for the counters, once committed
    transitions: list[tuple[str, str, str]] = field(default_factory=list)
    action_rules: list[str] = field(default_factory=list)
    outcomes: list[SendOutcome] = field(default_factory=list)
    merges: int = 0
    folded: int = 0
    #: events dropped because their customer's erasure was not stored yet
    erased: int = 0
    #: customers whose due timers failed to fire once: dropped instead (the owner's set)
    drop_timers: set[str] = field(default_factory=set)
    #: customers a lifecycle pass failed on once: skipped (the owner's set)
    skip_pass: set[str] = field(default_factory=set)
    dropped: list[str] = field(default_factory=list)
    duplicates: int = 0
    fired: list[tuple[str, float]] = field(default_factory=list)

    # -- what to load first ------------------------------------------------------------

    def keys_for(self, part: PartitionState, record: Event | Record) -> Iterable[str]:
        """The customers of ``part`` a record may read (to have in memory before it)."""
        if isinstance(record, Event):
            yield record.customer_key
            yield from self._identities(part, record, record.customer_key)
        elif isinstance(record, Forward):
            yield record.target
            yield from self._identities(part, record.event, record.target)
        elif isinstance(record, MergeRequest):
            yield record.source
            if self.local(part, record.target):
                yield record.target
        else:
            yield record.target

    def _identities(self, part: PartitionState, event: Event, key: str) -> Iterable[str]:
        for other in (event.anonymous_id, event.previous_id):
            if other and other != key and self.local(part, other):
                yield other

    def local(self, part: PartitionState, key: str) -> bool:
        return partition_of(key, self.partitions) == part.partition

    # -- inputs ------------------------------------------------------------------------

    def event(self, part: PartitionState, event: Event, raw: bytes, offset: int) -> None:
        """A clm.events record of ``part`` (at ``offset``)."""
        self._event(part, event.customer_key, event, raw, part.partition, offset)

    def handoff(self, part: PartitionState, record: Record) -> None:
        """A hand-off record for a customer of ``part``."""
        if isinstance(record, Forward):
            event, raw = record.event, record.event.to_bytes()
            self._event(part, record.target, event, raw, record.partition, record.offset)
        elif isinstance(record, MergeRequest):
            self._merge_away(part, record.source, record.target, at=record.at, follow=record.follow)
        else:
            self._take_over(part, record.source, record.target, record.state, at=record.at)

    def _event(
        self, part: PartitionState, key: str, event: Event, raw: bytes, partition: int, offset: int
    ) -> None:
        """``event`` for ``key`` (a customer of ``part``), read at (``partition``, ``offset``)."""
        if key in part.tombstones:
            self.erased += 1  # erased with the customer (the erasure is not stored yet)
            return
        target = part.links.get(key)
        if target is not None:  # merged into a customer: its owner folds the event
            self._send(target, Forward(target, event, partition, offset))
            return
        for other, follow in ((event.anonymous_id, False), (event.previous_id, True)):
            if other and other != key:
                self._identify(part, other, key, at=event.received_at, follow=follow)
        self._fold(part, key, event, raw, partition, offset)

    def fire(self, part: PartitionState, key: str) -> None:
        """Fire the customer's timers that are released by now (see :meth:`gate`)."""
        state = part.get(key)
        if state is None:
            return
        gate = self.gate(part, state)
        due = sorted(
            (
                timer
                for timer in state.timers.values()
                if timer.due_at <= self.now
                and gate is not None
                and release_at(timer.due_at, timer.arrived_at, grace=self.grace) <= gate
            ),
            key=lambda timer: (timer.due_at, timer.timer_id),
        )
        if due and key in self.drop_timers:
            self.drop_timers.discard(key)
            for timer in due:
                del state.timers[timer.timer_id]
                self.dropped.append(timer.timer_id)
            part.changed(key, grace=self.grace)
            return
        effects: list[Effect] = []
        for timer in due:
            fired = TimerFired(
                timer_id=timer.timer_id, kind=timer.kind, run_id=timer.run_id, due_at=timer.due_at
            )
            produced = self._advance(state, fired)
            if produced:
                effects.extend(produced)
            self.fired.append((timer.kind, (self.now - timer.due_at).total_seconds()))
        if due:
            self._book(part, key, effects)
        else:
            part.hold(key, grace=self.grace)

    def gate(self, part: PartitionState, state: CustomerState) -> datetime | None:
        """The watermark the customer's timers fire by: its partition's, and for a customer
        with identities on other partitions (merged anonymous ids) also theirs."""
        mark = part.watermark
        if mark is None:
            return None
        others = [*state.profile.anonymous_ids, *state.merged]
        if any(not self.local(part, other) for other in others):
            floor = part.remote_floor
            return None if floor is None else min(mark, floor)
        return mark

    def reevaluate(self, part: PartitionState, key: str, version: int, *, at: datetime) -> bool:
        """Move the customer to the configuration's lifecycle model (a pass), as of ``at``
        (when the model was stored: a replayed pass moves alike); True when it moved."""
        state = part.get(key)
        if state is None or key in self.skip_pass:
            return False
        ctx = self._context(state, now=at)
        apply(ctx, LifecycleChanged(lifecycle_version=version))
        if not ctx.effects:
            return False
        self._book(part, key, ctx.effects)
        return True

    def erase(
        self, part: PartitionState, erasure_id: uuid.UUID, key: str, *, requested_at: datetime
    ) -> None:
        """Forget the customer; the checkpoint deletes its rows (last, so also those it
        writes itself) and queues the notice. Until then the key is a tombstone."""
        part.remove(key)
        part.tombstones.add(key)
        for anonymous in [a for a, target in part.links.items() if target == key]:
            del part.links[anonymous]
        pending = part.pending
        pending.erased.append((erasure_id, key))
        notice = ErasureV1(customer_key=key, erasure_id=erasure_id, requested_at=requested_at)
        pending.outbox.append(
            (
                f"erasure_{erasure_id}",
                key,
                part.partition,
                "erasure",
                notice.to_bytes().decode(),
                self.now,
            )
        )

    # -- the shared steps ----------------------------------------------------------------

    def _fold(
        self,
        part: PartitionState,
        key: str,
        event: Event,
        raw: bytes,
        partition: int,
        offset: int,
    ) -> None:
        state = part.get(key)
        if state is None:
            state = CustomerState.new(key)
            part.put(state)
        effects = self._advance(state, event)
        if effects is None:
            self.duplicates += 1
            return
        self.folded += 1
        pending = part.pending
        if event.event in COMMERCE_EVENTS and event.call == "track":
            pending.events.append(event_row(event, key, raw))
        else:
            log = pending.log.get(key)
            if log is None:
                pending.log[key] = LogRow(event, raw, partition=partition, offset=offset)
            else:
                log.add(event, raw)
        self._book(part, key, effects)

    def _identify(
        self, part: PartitionState, source: str, target: str, *, at: datetime, follow: bool
    ) -> None:
        """``source`` (an anonymous id, or an alias's previous id) is ``target``'s."""
        if not self.local(part, source):
            self._send(source, MergeRequest(source, target, at, follow))
        else:
            self._merge_away(part, source, target, at=at, follow=follow)

    def _merge_away(
        self, part: PartitionState, source: str, target: str, *, at: datetime, follow: bool
    ) -> None:
        """``source`` is a customer of ``part``: link it to ``target`` and hand its state on."""
        if source == target or source in part.tombstones:
            return
        linked = part.links.get(source)
        if linked is not None:
            if follow and linked != target:  # an alias merges what the id resolves to
                self._identify(part, linked, target, at=at, follow=True)
            return
        part.links[source] = target
        part.pending.links[source] = target
        part.pending.merges.append((source, target))
        state = part.get(source)
        if state is None:
            return
        part.remove(source)
        part.pending.removed.add(source)
        self.merges += 1
        if self.local(part, target):
            self._take_over(part, source, target, state, at=at)
        else:
            self._send(target, StateTransfer(source, target, state, at))

    def _take_over(
        self,
        part: PartitionState,
        source: str,
        target: str,
        anonymous: CustomerState,
        *,
        at: datetime,
    ) -> None:
        """Merge ``source``'s state into ``target`` (a customer of ``part``)."""
        if target in part.tombstones:
            return  # erased: what it was merging goes with it
        linked = part.links.get(target)
        if linked is not None:  # ``target`` was itself merged on: the state follows it
            self._send(linked, StateTransfer(source, linked, anonymous, at))
            return
        known = part.get(target)
        if known is not None and anonymous.customer_key in known.merged:
            return  # handed over twice
        cfg = self.config
        result = merge_states(
            known or CustomerState.new(target),
            anonymous,
            rules=cfg.rules,
            lifecycle=cfg.lifecycle,
            now=at,
            policy=cfg.policy,
        )
        part.put(result.state)
        self._book(part, target, [e for e in result.effects if e.customer_key == target])

    def _advance(self, state: CustomerState, input: Event | TimerFired) -> list[Effect] | None:
        cfg = self.config
        return advance(
            state, input, rules=cfg.rules, lifecycle=cfg.lifecycle, now=self.now, policy=cfg.policy
        )

    def _context(self, state: CustomerState, *, now: datetime) -> StepContext:
        cfg = self.config
        return StepContext(
            state=state, rules=cfg.rules, lifecycle=cfg.lifecycle, now=now, policy=cfg.policy
        )

    def _book(self, part: PartitionState, key: str, effects: list[Effect]) -> None:
        """The effects of one customer's input: rows for the checkpoint, actions to flush."""
        pending = part.pending
        for effect in effects:
            kind = type(effect)
            if kind is StageTransition:
                assert isinstance(effect, StageTransition)
                pending.transitions.append(transition_row(effect))
                self.transitions.append(
                    (effect.from_stage or "none", effect.to_stage, effect.cause)
                )
            elif kind is EmitAction:
                assert isinstance(effect, EmitAction)
                self.actions.append(outbox_row(effect, part.partition))
                self.action_rules.append(effect.rule)
            elif kind is CancelActions:
                assert isinstance(effect, CancelActions)
                self.actions.append(cancel_row(effect, part.partition))
        if effects:
            pending.runs.extend(run_rows(effects))
            self.outcomes.extend(send_outcomes(effects))
        part.changed(key, grace=self.grace)

    def _send(self, key: str, record: Record) -> None:
        self.handoffs.append((key, record))
