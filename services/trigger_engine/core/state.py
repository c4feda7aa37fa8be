"""Per-customer engine state, as plain data: what the I/O layer stores and reads back.

Everything a step needs to decide is here (profile, stage, runs, re-entry and inactivity
clocks, pending timers, recently seen event ids), so the core needs no other lookups.

Stored as MessagePack (:func:`encode_state`); :func:`decode_state` also reads the UTF-8
JSON states were stored as before (a JSON object starts with ``{``, a MessagePack map never
does), so stored states need no migration: each is rewritten as MessagePack when it next
changes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
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

#: How long a completed run's sends stay cancellable by a later ``exit_when`` event
#: (:class:`CompletedRun`), counted on the processing clock from the completion, when the
#: messenger got the run's last action. Its default retry schedule (0, 5 s, 5 min, 30 min, 2 h,
#: 5 h, 10 h, 10 h) spans about 28 h, at most about 36 h with its ±20 % jitter and a
#: ``Retry-After`` of up to an hour on every attempt; twice that also covers a messenger
#: backlog or outage of a day. Past it every such delivery is delivered, dead or stale, and a
#: cancellation would find nothing to cancel.
COMPLETED_RUN_HORIZON: Final = timedelta(hours=72)
#: At most this many are kept per customer (the newest): a customer completes a handful of
#: sending rules with ``exit_when`` in three days (a rule with ``reentry`` of a day, three
#: runs), and each record is stored with the state, rewritten on every change.
COMPLETED_RUNS_KEPT: Final = 8


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
    being waited on. ``emitted``: the run has emitted an action, so an early end tells the
    messenger to cancel what it has not delivered yet (False in states stored before this
    field existed: such a run's exit sends no cancellation).
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
    emitted: bool = False


class CompletedRun(msgspec.Struct, kw_only=True, array_like=True):
    """A run that completed after emitting actions, of a rule version with ``exit_when``: the
    messenger may still hold its last sends (queued, or between retries), so an exit event
    that comes later cancels them as it would have ended the run (see
    :func:`.runs.cancel_completed`). One ``CancelActions`` at most (the record is dropped with
    it); forgotten :data:`COMPLETED_RUN_HORIZON` after ``completed_at`` and beyond the newest
    :data:`COMPLETED_RUNS_KEPT`.

    ``started_at`` and ``trigger_message_id`` are what the exit test of an active run reads
    (only events at or after the start count, and never the trigger itself). ``completed_at``
    is the processing clock (``now``) of the completion. Stored as an array, to keep the
    state small: add fields only at the end, with defaults.
    """

    run_id: str
    rule_key: str
    rule_version: int
    trigger_message_id: str
    started_at: datetime
    completed_at: datetime


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
    #: completed runs whose sends a later exit event still cancels, oldest first (empty in
    #: states stored before it existed)
    completed_runs: list[CompletedRun] = msgspec.field(default_factory=list)

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
