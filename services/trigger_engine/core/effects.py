"""What a step asks the outside world to do or record. Plain data; the I/O layer acts on it.

Every effect carries an id derived from its cause (timer id, action id, run id), so writing
the effects of a replayed step a second time is a no-op under ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.envelope import ActionV1

from .inputs import TimerKind


class _Effect(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    customer_key: str


class SetTimer(_Effect):
    """Fire ``TimerFired`` for this customer at ``due_at`` (durable; at least once).

    ``arrived_at``: when the input that set it arrived (see ``PendingTimer.arrived_at``).
    """

    type: Literal["set_timer"] = "set_timer"
    timer_id: str
    due_at: datetime
    kind: TimerKind
    run_id: str | None = None
    rule_key: str | None = None
    arrived_at: datetime | None = None


class CancelTimer(_Effect):
    type: Literal["cancel_timer"] = "cancel_timer"
    timer_id: str


TransitionCause = Literal["event", "time", "merge", "model"]
"""What moved the stage: an event, time passing, a merge, or a new lifecycle model."""


class StageTransition(_Effect):
    """A row of the customer's stage history."""

    type: Literal["stage_transition"] = "stage_transition"
    from_stage: str | None
    to_stage: str
    at: datetime
    cause: TransitionCause
    cause_event: str | None = None
    cause_message_id: str | None = None
    reactivated: bool = False


class OfferOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: str
    kind: str | None = None
    value: float | None = None
    expires_at: datetime | None = None


class CustomerSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    email: str | None = None
    phone: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    stage: str | None = None


class TriggerRef(BaseModel):
    """What started the run: the storefront event, the stage entered, or the missing event."""

    model_config = ConfigDict(frozen=True)

    type: str
    event: str | None = None
    message_id: str
    stage: str | None = None


class ActionContext(BaseModel):
    model_config = ConfigDict(frozen=True)

    cart: dict[str, Any]
    offer: OfferOut | None = None
    trigger: TriggerRef


class EmitAction(_Effect):
    """A message to send: becomes an outbox row and then an ``ActionV1`` on ``clm.actions``."""

    type: Literal["emit_action"] = "emit_action"
    action_id: str
    run_id: str
    rule: str
    rule_version: int
    step: int
    channel: str
    template: str
    destination: str | None = None
    customer: CustomerSnapshot
    context: ActionContext
    created_at: datetime

    def data(self) -> dict[str, Any]:
        """The webhook ``data`` object of the contract."""
        return {
            "action_id": self.action_id,
            "rule": self.rule,
            "rule_version": self.rule_version,
            "step": self.step,
            "channel": self.channel,
            "template": self.template,
            "customer": self.customer.model_dump(mode="json"),
            "context": self.context.model_dump(mode="json"),
        }

    def to_action(self) -> ActionV1:
        return ActionV1(
            action_id=self.action_id,
            customer_key=self.customer_key,
            channel=self.channel,
            destination=self.destination,
            data=self.data(),
            created_at=self.created_at,
        )


class _RunRecord(_Effect):
    run_id: str
    rule: str
    rule_version: int
    holdout: bool
    at: datetime


class RunStarted(_RunRecord):
    type: Literal["run_started"] = "run_started"
    trigger: TriggerRef


ExitReason = Literal["exit_when", "audience", "rule_disabled", "rule_version_missing", "merged"]
SkipReason = Literal["opted_out", "no_opt_in", "frequency_capped"]


class RunExited(_RunRecord):
    type: Literal["run_exited"] = "run_exited"
    reason: ExitReason
    step: int


class RunCompleted(_RunRecord):
    type: Literal["run_completed"] = "run_completed"


class HeldOut(_RunRecord):
    """A send skipped because the customer is in the rule's holdout group."""

    type: Literal["held_out"] = "held_out"
    step: int
    action_id: str


class SendDeferred(_RunRecord):
    """A send postponed by the send policy's quiet hours; the run resumes it at ``until``."""

    type: Literal["send_deferred"] = "send_deferred"
    step: int
    action_id: str
    channel: str
    until: datetime
    reason: Literal["quiet_hours"] = "quiet_hours"


class SendSkipped(_RunRecord):
    """A send the send policy refused (no consent, frequency cap); the run goes on."""

    type: Literal["send_skipped"] = "send_skipped"
    step: int
    action_id: str
    channel: str
    reason: SkipReason


class Converted(_RunRecord):
    """The goal event happened within the goal window (treated and held-out runs alike)."""

    type: Literal["converted"] = "converted"
    message_id: str


Effect = Annotated[
    SetTimer
    | CancelTimer
    | StageTransition
    | EmitAction
    | RunStarted
    | RunExited
    | RunCompleted
    | HeldOut
    | SendDeferred
    | SendSkipped
    | Converted,
    Field(discriminator="type"),
]
