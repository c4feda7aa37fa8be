"""What a step asks the outside world to do or record. Plain data; the I/O layer acts on it.

Every effect carries an id derived from its cause (timer id, action id, run id), so writing
the effects of a replayed step a second time is a no-op under ``ON CONFLICT DO NOTHING``.
Each kind names itself in ``type`` (a class attribute: nothing to build per effect).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

import msgspec

from shared.envelope import ActionCancelV1, ActionV1

from .inputs import TimerKind
from .plain import json_view


class _Effect(msgspec.Struct, frozen=True, kw_only=True):
    customer_key: str


class SetTimer(_Effect, frozen=True, kw_only=True):
    """Fire ``TimerFired`` for this customer at ``due_at`` (durable; at least once).

    ``arrived_at``: when the input that set it arrived (see ``PendingTimer.arrived_at``).
    """

    type: ClassVar[str] = "set_timer"
    timer_id: str
    due_at: datetime
    kind: TimerKind
    run_id: str | None = None
    rule_key: str | None = None
    arrived_at: datetime | None = None


class CancelTimer(_Effect, frozen=True, kw_only=True):
    type: ClassVar[str] = "cancel_timer"
    timer_id: str


TransitionCause = Literal["event", "time", "merge", "model"]
"""What moved the stage: an event, time passing, a merge, or a new lifecycle model."""


class StageTransition(_Effect, frozen=True, kw_only=True):
    """A row of the customer's stage history."""

    type: ClassVar[str] = "stage_transition"
    from_stage: str | None
    to_stage: str
    at: datetime
    cause: TransitionCause
    cause_event: str | None = None
    cause_message_id: str | None = None
    reactivated: bool = False


class OfferOut(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    kind: str | None = None
    value: float | None = None
    expires_at: datetime | None = None


class CustomerSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    email: str | None = None
    phone: str | None = None
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    stage: str | None = None


class TriggerRef(msgspec.Struct, frozen=True, kw_only=True):
    """What started the run: the storefront event, the stage entered, or the missing event."""

    type: str
    event: str | None = None
    message_id: str
    stage: str | None = None


class ActionContext(msgspec.Struct, frozen=True, kw_only=True):
    cart: dict[str, Any]
    offer: OfferOut | None = None
    trigger: TriggerRef


class EmitAction(_Effect, frozen=True, kw_only=True):
    """A message to send: becomes an outbox row and then an ``ActionV1`` on ``clm.actions``."""

    type: ClassVar[str] = "emit_action"
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
            "customer": json_view(self.customer),
            "context": json_view(self.context),
        }

    def to_action(self) -> ActionV1:
        return ActionV1(
            action_id=self.action_id,
            customer_key=self.customer_key,
            channel=self.channel,
            destination=self.destination,
            data=self.data(),
            created_at=self.created_at,
            run_id=self.run_id,
        )


class _RunRecord(_Effect, frozen=True, kw_only=True):
    run_id: str
    rule: str
    rule_version: int
    holdout: bool
    at: datetime


class RunStarted(_RunRecord, frozen=True, kw_only=True):
    type: ClassVar[str] = "run_started"
    trigger: TriggerRef


ExitReason = Literal["exit_when", "audience", "rule_disabled", "rule_version_missing", "merged"]
SkipReason = Literal["opted_out", "no_opt_in", "frequency_capped"]


class RunExited(_RunRecord, frozen=True, kw_only=True):
    type: ClassVar[str] = "run_exited"
    reason: ExitReason
    step: int


class RunCompleted(_RunRecord, frozen=True, kw_only=True):
    type: ClassVar[str] = "run_completed"


class CancelActions(_RunRecord, frozen=True, kw_only=True):
    """A run that had emitted actions ended early (an exit), or completed and then saw an
    ``exit_when`` event: what of them the messenger has not delivered yet must not go out.
    Becomes an outbox row and then an ``ActionCancelV1`` on ``clm.actions``, flushed and
    published like an action (right after its batch).

    Follows the run's ``RunExited``, or stands alone (reason ``exit_when``) for a completed
    run (``CustomerState.completed_runs``); one per run either way. Never made for a run
    that emitted nothing (held out, skipped, or ended before its first send)."""

    type: ClassVar[str] = "cancel_actions"
    cancel_id: str
    reason: ExitReason

    def to_record(self) -> ActionCancelV1:
        return ActionCancelV1(
            cancel_id=self.cancel_id,
            run_id=self.run_id,
            customer_key=self.customer_key,
            rule=self.rule,
            reason=self.reason,
            ended_at=self.at,
        )


class HeldOut(_RunRecord, frozen=True, kw_only=True):
    """A send skipped because the customer is in the rule's holdout group."""

    type: ClassVar[str] = "held_out"
    step: int
    action_id: str


class SendDeferred(_RunRecord, frozen=True, kw_only=True):
    """A send postponed by the send policy's quiet hours; the run resumes it at ``until``."""

    type: ClassVar[str] = "send_deferred"
    step: int
    action_id: str
    channel: str
    until: datetime
    reason: Literal["quiet_hours"] = "quiet_hours"


class SendSkipped(_RunRecord, frozen=True, kw_only=True):
    """A send the send policy refused (no consent, frequency cap); the run goes on."""

    type: ClassVar[str] = "send_skipped"
    step: int
    action_id: str
    channel: str
    reason: SkipReason


class Converted(_RunRecord, frozen=True, kw_only=True):
    """The goal event happened within the goal window (treated and held-out runs alike)."""

    type: ClassVar[str] = "converted"
    message_id: str


Effect = (
    SetTimer
    | CancelTimer
    | StageTransition
    | EmitAction
    | RunStarted
    | RunExited
    | RunCompleted
    | CancelActions
    | HeldOut
    | SendDeferred
    | SendSkipped
    | Converted
)
