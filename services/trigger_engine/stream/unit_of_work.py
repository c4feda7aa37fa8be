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
from services.trigger_engine.core.effects import Effect, EmitAction, StageTransition
from services.trigger_engine.core.engine import apply
from services.trigger_engine.core.fold import advance
from services.trigger_engine.core.inputs import LifecycleChanged, TimerFired
from services.trigger_engine.core.merging import merge_states
from services.trigger_engine.core.state import CustomerState
from services.trigger_engine.partitions.watermark import release_at
from services.trigger_engine.runs.outcomes import SendOutcome, send_outcomes
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
    event_row,
    outbox_row,
    run_event_rows,
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
    #: outbox rows of actions, to flush and publish right after this unit
    actions: list[tuple[Any, ...]] = field(default_factory=list)
    #: (key, record) to send on the hand-off topic
    handoffs: list[tuple[str, Record]] = field(default_factory=list)
    #: for the counters, once committed
    transitions: list[tuple[str, str, str]] = field(default_factory=list)
    action_rules: list[str] = field(default_factory=list)
    outcomes: list[SendOutcome] = field(default_factory=list)
    merges: int = 0
    folded: int = 0
    duplicates: int = 0
    fired: list[tuple[str, float]] = field(default_factory=list)

    # -- what to load first ------------------------------------------------------------

    def keys_for(self, part: PartitionState, event: Event) -> Iterable[str]:
        """The customers of ``part`` an event may read (to have in memory before it)."""
        yield event.customer_key
        for other in (event.anonymous_id, event.previous_id):
            if other and other != event.customer_key and self.local(part, other):
                yield other

    def local(self, part: PartitionState, key: str) -> bool:
        return partition_of(key, self.partitions) == part.partition

    # -- inputs ------------------------------------------------------------------------

    def event(self, part: PartitionState, event: Event, raw: bytes, offset: int) -> None:
        """A clm.events record of ``part`` (at ``offset``)."""
        key = event.customer_key
        target = part.links.get(key)
        if target is not None:  # merged into a customer: its owner folds the event
            self._send(target, Forward(target, event, part.partition, offset))
            return
        for other, follow in ((event.anonymous_id, False), (event.previous_id, True)):
            if other and other != key:
                self._identify(part, other, key, follow=follow)
        self._fold(part, key, event, raw, part.partition, offset)

    def handoff(self, part: PartitionState, record: Record) -> None:
        """A hand-off record for a customer of ``part``."""
        if isinstance(record, Forward):
            target = part.links.get(record.target)
            if target is not None:
                self._send(target, Forward(target, record.event, record.partition, record.offset))
                return
            raw = record.event.to_bytes()
            self._fold(part, record.target, record.event, raw, record.partition, record.offset)
        elif isinstance(record, MergeRequest):
            self._merge_away(part, record.source, record.target, follow=record.follow)
        else:
            self._take_over(part, record.target, record.state)

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
            part.arm_again(key, grace=self.grace)

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

    def reevaluate(self, part: PartitionState, key: str, version: int) -> bool:
        """Move the customer to the configuration's lifecycle model (a pass); True when it
        moved (stage or stage timer)."""
        state = part.get(key)
        if state is None:
            return False
        ctx = self._context(state)
        apply(ctx, LifecycleChanged(lifecycle_version=version))
        if not ctx.effects:
            return False
        self._book(part, key, ctx.effects)
        return True

    def erase(self, part: PartitionState, erasure_id: uuid.UUID, key: str) -> None:
        """Forget the customer; the checkpoint deletes its rows and queues the notice."""
        part.remove(key)
        for anonymous in [a for a, target in part.links.items() if target == key]:
            del part.links[anonymous]
        pending = part.pending
        pending.erased.append((erasure_id, key))
        notice = ErasureV1(customer_key=key, erasure_id=erasure_id, requested_at=self.now)
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

    def _identify(self, part: PartitionState, source: str, target: str, *, follow: bool) -> None:
        """``source`` (an anonymous id, or an alias's previous id) is ``target``'s."""
        if not self.local(part, source):
            self._send(source, MergeRequest(source, target, follow))
        else:
            self._merge_away(part, source, target, follow=follow)

    def _merge_away(self, part: PartitionState, source: str, target: str, *, follow: bool) -> None:
        """``source`` is a customer of ``part``: link it to ``target`` and hand its state on."""
        if source == target:
            return
        linked = part.links.get(source)
        if linked is not None:
            if follow and linked != target:  # an alias merges what the id resolves to
                self._identify(part, linked, target, follow=True)
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
            self._take_over(part, target, state)
        else:
            self._send(target, StateTransfer(source, target, state))

    def _take_over(self, part: PartitionState, target: str, anonymous: CustomerState) -> None:
        known = part.get(target)
        if known is not None and anonymous.customer_key in known.merged:
            return  # handed over twice
        cfg = self.config
        result = merge_states(
            known or CustomerState.new(target),
            anonymous,
            rules=cfg.rules,
            lifecycle=cfg.lifecycle,
            now=self.now,
            policy=cfg.policy,
        )
        part.put(result.state)
        self._book(part, target, [e for e in result.effects if e.customer_key == target])

    def _advance(self, state: CustomerState, input: Event | TimerFired) -> list[Effect] | None:
        cfg = self.config
        return advance(
            state, input, rules=cfg.rules, lifecycle=cfg.lifecycle, now=self.now, policy=cfg.policy
        )

    def _context(self, state: CustomerState) -> StepContext:
        cfg = self.config
        return StepContext(
            state=state, rules=cfg.rules, lifecycle=cfg.lifecycle, now=self.now, policy=cfg.policy
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
        if effects:
            pending.runs.extend(run_event_rows(effects))
            self.outcomes.extend(send_outcomes(effects))
        part.changed(key, grace=self.grace)

    def _send(self, key: str, record: Record) -> None:
        self.handoffs.append((key, record))
