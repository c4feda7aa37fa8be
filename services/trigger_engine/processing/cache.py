"""The states this process wrote last, kept decoded so the next batch need not read them.

Reading a customer's state back (transfer, JSON parse, model validation) costs more than
folding an event into it, and a partition's customers come back batch after batch. So
every committed write leaves its states here, keyed by customer, with the *row version*
they were written as: PostgreSQL's ``xmin`` of the row, i.e. the id of the transaction
that wrote it. The loader locks a batch's rows (``FOR UPDATE``, as before), reads their
current ``xmin`` and takes a cached state only if it is the same: any other writer (the
other engine instance, the timer worker, an erasure, a merge) changes the row and with it
``xmin``, and a rolled-back write never changes it. So a cached state is used only while
it is exactly the committed row, and only under that row's lock.

Entries are taken *out* when used (the batch's fold then owns and mutates the state) and
put back only after the batch committed, so a failed batch leaves nothing stale behind.
Bounded, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import NamedTuple

from services.trigger_engine.core.state import CustomerState


class Versioned(NamedTuple):
    """A state and the version (``xmin``) of the row it is the content of."""

    version: int
    state: CustomerState


class StateCache:
    def __init__(self, capacity: int = 50_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, Versioned] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def take(self, key: str, version: int) -> CustomerState | None:
        """Remove ``key``'s entry; return its state if it is of row version ``version``."""
        entry = self._entries.pop(key, None)
        if entry is not None and entry.version == version:
            self.hits += 1
            return entry.state
        self.misses += 1
        return None

    def keep(self, states: Mapping[str, Versioned]) -> None:
        """After a commit: remember the batch's states (handing their ownership over)."""
        if self.capacity <= 0:
            return
        entries = self._entries
        for key, entry in states.items():
            entries.pop(key, None)
            entries[key] = entry
        while len(entries) > self.capacity:
            entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
