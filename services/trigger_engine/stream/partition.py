"""One owned partition in memory: its customers' states, their timers, and what the next
checkpoint must write.

The owner folds every record of the partition into these states in place (the core's
``advance``: no copies), so a state here is always ahead of, or equal to, its row in
PostgreSQL: ``dirty`` names the states changed since the last checkpoint. Clean states may be
evicted when there are too many (least recently used first); a miss reads the row back.
"""

from __future__ import annotations

import heapq
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.trigger_engine.core.state import CustomerState
from services.trigger_engine.stream.rows import LogRow, next_release


@dataclass
class Pending:
    """What the next checkpoint writes for the partition (besides the dirty states)."""

    removed: set[str] = field(default_factory=set)
    links: dict[str, str] = field(default_factory=dict)
    merges: list[tuple[str, str]] = field(default_factory=list)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)
    runs: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[Any, ...]] = field(default_factory=list)
    log: dict[str, LogRow] = field(default_factory=dict)
    #: outbox rows not yet written (actions are flushed right after their batch)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    erased: list[tuple[uuid.UUID, str]] = field(default_factory=list)
    #: lifecycle pass progress since the last checkpoint
    pass_customers: int = 0
    pass_transitions: int = 0


@dataclass
class PartitionState:
    partition: int
    generation: int
    #: next offsets to consume, checkpointed (None: the group's committed offset)
    events_offset: int | None
    handoff_offset: int | None
    #: every clm.events record appended before it is folded (see ``partitions/watermark.py``)
    watermark: datetime | None
    handoff_watermark: datetime | None = None
    #: the lowest watermark of all partitions as read at the last checkpoint, and the instant
    #: it was read; it holds for this partition once the hand-off partition has been consumed
    #: past that instant (every forward sent before it has arrived)
    remote_read: tuple[datetime, datetime] | None = None
    remote_floor: datetime | None = None
    states: OrderedDict[str, CustomerState] = field(default_factory=OrderedDict)
    dirty: set[str] = field(default_factory=set)
    #: anonymous customers of this partition merged into a customer (of any partition)
    links: dict[str, str] = field(default_factory=dict)
    #: (release time, customer key): customers with a timer; stale entries are skipped
    timers: list[tuple[datetime, str]] = field(default_factory=list)
    released: dict[str, datetime] = field(default_factory=dict)
    pending: Pending = field(default_factory=Pending)
    pass_version: int | None = None
    pass_cursor: str | None = None

    def get(self, key: str) -> CustomerState | None:
        state = self.states.get(key)
        if state is not None:
            self.states.move_to_end(key)
        return state

    def put(self, state: CustomerState) -> None:
        self.states[state.customer_key] = state
        self.states.move_to_end(state.customer_key)

    def changed(self, key: str, *, grace: timedelta) -> None:
        """``key``'s state changed: write it at the next checkpoint and (re)arm its timers."""
        self.dirty.add(key)
        state = self.states[key]
        at = next_release(state, grace=grace)
        if at is None:
            self.released.pop(key, None)
        elif self.released.get(key) != at:
            self.released[key] = at
            heapq.heappush(self.timers, (at, key))

    def arm_again(self, key: str, *, grace: timedelta) -> None:
        """Re-arm a customer whose timers were looked at but not fired (held back)."""
        state = self.states.get(key)
        at = next_release(state, grace=grace) if state is not None else None
        if at is not None:
            self.released[key] = at
            heapq.heappush(self.timers, (at, key))

    def arm(self, key: str, at: datetime) -> None:
        """A stored customer with a timer releasing at ``at`` (read from PostgreSQL)."""
        if key not in self.released or at < self.released[key]:
            self.released[key] = at
            heapq.heappush(self.timers, (at, key))

    def due(self, until: datetime) -> list[str]:
        """Pop the customers whose earliest timer releases by ``until``."""
        keys: list[str] = []
        timers = self.timers
        while timers and timers[0][0] <= until:
            at, key = heapq.heappop(timers)
            if self.released.get(key) == at:
                del self.released[key]
                keys.append(key)
        return keys

    def remove(self, key: str) -> None:
        """The customer is gone from this partition (merged away or erased)."""
        self.states.pop(key, None)
        self.dirty.discard(key)
        self.released.pop(key, None)
        self.pending.log.pop(key, None)

    def evict(self, capacity: int) -> int:
        """Forget the least recently used clean states beyond ``capacity``."""
        evicted = 0
        states = self.states
        if len(states) <= capacity:
            return 0
        for key in list(states):
            if len(states) <= capacity:
                break
            if key not in self.dirty:
                del states[key]
                evicted += 1
        return evicted

    def take_pending(self) -> Pending:
        pending, self.pending = self.pending, Pending()
        return pending
