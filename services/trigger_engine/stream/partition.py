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
from collections import OrderedDict, deque
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
    #: (instant read, lowest watermark of all partitions) as checkpoints read them, oldest
    #: first: a floor holds for this partition once its hand-off watermark is past the
    #: instant it was read at (every forward sent before then has been consumed)
    remote_reads: deque[tuple[datetime, datetime]] = field(default_factory=lambda: deque(maxlen=64))
    remote_floor: datetime | None = None
    #: where consumption started after the assignment, per topic, when no checkpoint had an
    #: offset yet (a rebuild goes back there)
    started: dict[str, int] = field(default_factory=dict)
    states: OrderedDict[str, CustomerState] = field(default_factory=OrderedDict)
    dirty: set[str] = field(default_factory=set)
    #: anonymous customers of this partition merged into a customer (of any partition)
    links: dict[str, str] = field(default_factory=dict)
    #: (release time, customer key): customers with a timer; stale entries are skipped
    timers: list[tuple[datetime, str]] = field(default_factory=list)
    released: dict[str, datetime] = field(default_factory=dict)
    #: customers whose released timers wait for the remote floor (merged identities on other
    #: partitions), and their release time: armed again when the floor moves
    held: dict[str, datetime] = field(default_factory=dict)
    #: erased customers whose erasure is not checkpointed yet: nothing is loaded or folded
    #: for them until it is (the checkpoint deletes their rows last)
    tombstones: set[str] = field(default_factory=set)
    pending: Pending = field(default_factory=Pending)
    pass_version: int | None = None
    pass_cursor: str | None = None
    #: the pass scans once the checkpoint with this sequence number is written (every
    #: customer folded before the pass started is stored by then)
    pass_after: int = 0

    def get(self, key: str) -> CustomerState | None:
        state = self.states.get(key)
        if state is not None:
            self.states.move_to_end(key)
        return state

    def absent(self, key: str) -> bool:
        """Whether ``key`` is neither in memory nor known to be merged away or erased (so its
        stored state, if any, is to be read)."""
        return key not in self.states and key not in self.links and key not in self.tombstones

    def published_watermark(self) -> datetime | None:
        """The watermark the checkpoint stores (and the other partitions gate merged
        customers' timers by): what this partition's owner has folded from either topic
        (a forward it received may be forwarded on)."""
        mark, handoff = self.watermark, self.handoff_watermark
        return None if mark is None or handoff is None else min(mark, handoff)

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
            self._push(key, at)

    def hold(self, key: str, *, grace: timedelta) -> None:
        """A customer whose released timers the remote floor holds back: armed again when
        the floor moves (:meth:`floor_moved`), not looked at on every tick until then."""
        state = self.states.get(key)
        at = next_release(state, grace=grace) if state is not None else None
        if at is not None:
            self.held[key] = at

    def arm(self, key: str, at: datetime) -> None:
        """A stored customer with a timer releasing at ``at`` (read from PostgreSQL)."""
        if key not in self.released or at < self.released[key]:
            self._push(key, at)

    def _push(self, key: str, at: datetime) -> None:
        self.released[key] = at
        timers = self.timers
        heapq.heappush(timers, (at, key))
        if len(timers) > 2 * len(self.released) + 1000:  # mostly stale entries: rebuild
            self.timers = [(when, who) for who, when in self.released.items()]
            heapq.heapify(self.timers)

    def handoff_moved(self, mark: datetime) -> None:
        """The hand-off watermark reached ``mark``: the newest remote floor read before it
        holds now, and the customers it held back are armed again."""
        if self.handoff_watermark is not None and mark <= self.handoff_watermark:
            return
        self.handoff_watermark = mark
        reads, floor = self.remote_reads, None
        while reads and reads[0][0] <= mark:
            floor = reads.popleft()[1]
        if floor is None or (self.remote_floor is not None and floor <= self.remote_floor):
            return
        self.remote_floor = floor
        held, self.held = self.held, {}
        for key, at in held.items():
            self.arm(key, at)

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
        """The customer is gone from this partition (merged away or erased); rows pending
        for it stay (the checkpoint re-keys a merged customer's rows, deletes an erased one's)."""
        self.states.pop(key, None)
        self.dirty.discard(key)
        self.released.pop(key, None)
        self.held.pop(key, None)

    def evict(self, capacity: int) -> int:
        """Forget the least recently used clean states beyond ``capacity`` (and, past as
        many identity links, the links already stored: a miss reads them back)."""
        if len(self.links) > capacity:
            unsaved = self.pending.links
            self.links = {key: target for key, target in self.links.items() if key in unsaved}
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
