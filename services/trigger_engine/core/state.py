"""Per-customer engine state, as plain data: what the I/O layer stores and reads back.

Everything a step needs to decide is here (profile, stage, runs, re-entry and inactivity
clocks, pending timers, recently seen event ids), so the core needs no other lookups.

Stored as MessagePack (:func:`encode_state`); :func:`decode_state` also reads the UTF-8
JSON states were stored as before (a JSON object starts with ``{``, a MessagePack map never
does), so stored states need no migration: each is rewritten as MessagePack when it next
changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

import msgspec

from .effects import TriggerRef
from .inputs import TimerKind
from .plain import ENCODER
from .profile import Profile

RunStatus = Literal["active", "completed", "exited"]

#: Event ids remembered per customer, so a redelivered event (a producer retry, ingest
#: sending a record twice) changes nothing. Per-customer order makes the redelivered ones
#: recent. (The live engine also skips records below its checkpointed offsets.) Every id is
#: stored with the state, rewritten on every change: kept short.
RECENT_EVENT_IDS: Final = 32


class PendingTimer(msgspec.Struct, kw_only=True):
    timer_id: str
    kind: TimerKind
    due_at: datetime
    run_id: str | None = None
    rule_key: str | None = None
    #: when the event that set the timer arrived (its ``received_at``); None when a timer or
    #: a lifecycle pass set it. A timer already due on arrival is late data: the I/O layer
    #: holds it a grace period for the rest of a late burst
    arrived_at: datetime | None = None


class Run(msgspec.Struct, kw_only=True):
    """One customer's pass through one rule version.

    ``step_index`` is the step being executed or waited on. Finished runs are kept until
    their goal window closes, so a late conversion still counts. ``timer_id`` is the wait
    being waited on.
    """

    run_id: str
    rule_key: str
    rule_version: int
    step_index: int = 0
    status: RunStatus = "active"
    holdout: bool = False
    trigger: TriggerRef
    started_at: datetime
    goal_deadline: datetime | None = None
    converted: bool = False
    timer_id: str | None = None
    ended_at: datetime | None = None


class InactivityClock(msgspec.Struct, kw_only=True):
    """Last time the watched event was seen, and the timer that fires if it stays away."""

    event: str
    last_seen_at: datetime
    timer_id: str | None = None


class CustomerState(msgspec.Struct, kw_only=True):
    """``last_entry``: rule key -> last time this customer entered it; ``inactivity``: rule
    key -> clock; ``sends``: channel -> recent send times, for the send policy's frequency
    caps, pruned to the channel's longest cap window (see :mod:`.policy`)."""

    customer_key: str
    profile: Profile
    stage: str | None = None
    stage_entered_at: datetime | None = None
    stage_timer_id: str | None = None
    #: the lifecycle model (``CompiledLifecycle.tag``) the stage and the stage timer were
    #: last evaluated under; 0: none yet
    stage_model: int = 0
    runs: dict[str, Run] = msgspec.field(default_factory=dict)
    last_entry: dict[str, datetime] = msgspec.field(default_factory=dict)
    inactivity: dict[str, InactivityClock] = msgspec.field(default_factory=dict)
    timers: dict[str, PendingTimer] = msgspec.field(default_factory=dict)
    recent_event_ids: list[str] = msgspec.field(default_factory=list)
    sends: dict[str, list[datetime]] = msgspec.field(default_factory=dict)
    #: customers merged into this one (their keys), so that a state handed over twice is
    #: merged once
    merged: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def new(cls, customer_key: str) -> CustomerState:
        return cls(customer_key=customer_key, profile=Profile(customer_key=customer_key))

    def active_run(self, rule_key: str) -> Run | None:
        for run in self.runs.values():
            if run.rule_key == rule_key and run.status == "active":
                return run
        return None


_DECODE = msgspec.msgpack.Decoder(CustomerState)
_DECODE_JSON = msgspec.json.Decoder(CustomerState)


def encode_state(state: CustomerState) -> bytes:
    """``state`` as it is stored (MessagePack)."""
    return ENCODER.encode(state)


def decode_state(raw: bytes) -> CustomerState:
    """A stored state: MessagePack, or the UTF-8 JSON of earlier versions."""
    if raw[:1] == b"{":
        return _DECODE_JSON.decode(raw)
    return _DECODE.decode(raw)
