"""Per-customer engine state: stored as JSONB by the I/O layer, restored with ``model_validate``.

Everything a step needs to decide is here (profile, stage, runs, re-entry and inactivity
clocks, pending timers, recently seen event ids), so the core needs no other lookups.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from .effects import TriggerRef
from .inputs import TimerKind
from .profile import Profile

RunStatus = Literal["active", "completed", "exited"]

#: Event ids remembered per customer, so a redelivered event (crash between the database
#: commit and the Kafka offset commit) changes nothing even for a caller of ``step`` that
#: keeps no event store. Per-customer order makes the redelivered ones recent. (The live
#: engine also folds only events its event store did not hold yet.) Every id is stored with
#: the state, rewritten on every change: kept short.
RECENT_EVENT_IDS: Final = 32


class PendingTimer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timer_id: str
    kind: TimerKind
    due_at: datetime
    run_id: str | None = None
    rule_key: str | None = None
    arrived_at: datetime | None = Field(
        default=None,
        description="when the event that set the timer arrived (its received_at); None when "
        "a timer or a lifecycle pass set it. A timer already due on arrival is late data: "
        "the I/O layer holds it a grace period for the rest of a late burst",
    )


class Run(BaseModel):
    """One customer's pass through one rule version.

    ``step_index`` is the step being executed or waited on. Finished runs are kept until
    their goal window closes, so a late conversion still counts.
    """

    model_config = ConfigDict(extra="forbid")

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
    timer_id: str | None = Field(default=None, description="the wait being waited on")
    ended_at: datetime | None = None


class InactivityClock(BaseModel):
    """Last time the watched event was seen, and the timer that fires if it stays away."""

    model_config = ConfigDict(extra="forbid")

    event: str
    last_seen_at: datetime
    timer_id: str | None = None


class CustomerState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_key: str
    profile: Profile
    stage: str | None = None
    stage_entered_at: datetime | None = None
    stage_timer_id: str | None = None
    runs: dict[str, Run] = Field(default_factory=dict)
    last_entry: dict[str, datetime] = Field(
        default_factory=dict, description="rule key -> last time this customer entered it"
    )
    inactivity: dict[str, InactivityClock] = Field(
        default_factory=dict, description="rule key -> clock"
    )
    timers: dict[str, PendingTimer] = Field(default_factory=dict)
    recent_event_ids: list[str] = Field(default_factory=list)
    sends: dict[str, list[datetime]] = Field(
        default_factory=dict,
        description="channel -> recent send times, for the send policy's frequency caps; "
        "pruned to the channel's longest cap window (see core.policy)",
    )

    @classmethod
    def new(cls, customer_key: str) -> CustomerState:
        return cls(customer_key=customer_key, profile=Profile(customer_key=customer_key))

    def active_run(self, rule_key: str) -> Run | None:
        for run in self.runs.values():
            if run.rule_key == rule_key and run.status == "active":
                return run
        return None


def state_json(state: CustomerState) -> bytes:
    """``state`` as the UTF-8 JSON it is stored as (``CustomerState.model_validate_json``
    reads it back)."""
    return CustomerState.__pydantic_serializer__.to_json(state)
