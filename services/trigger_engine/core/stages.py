"""Keeping the customer's stage current, and starting the rules that listen for stage changes.

After every input the stage is recomputed. Time-based changes that happened *before* the
input (a timer firing late, or an event arriving after a boundary passed) are replayed at
their own instants first, so every intermediate stage is entered, recorded and can trigger
its rules, and a purchase by an ``at_risk`` customer is seen as a reactivation.
"""

from __future__ import annotations

from datetime import datetime

from shared.envelope import Event

from . import derive
from .context import StepContext
from .effects import StageTransition, TransitionCause, TriggerRef
from .inputs import StageChanged
from .rules import StageChangedTrigger, StageEnteredTrigger
from .runs import try_start


def settled(ctx: StepContext, until: datetime) -> bool:
    """Whether the stage and the stage timer are known to hold up to ``until`` without
    evaluating the model: they were evaluated under this very model, this step changed
    nothing the model reads, and no time-based change is due by ``until`` (the stage timer,
    due at the next change the model foresaw, is later)."""
    state = ctx.state
    if ctx.stage_stale or state.stage_model != ctx.lifecycle.compiled.tag:
        return False
    timer_id = state.stage_timer_id
    if timer_id is None:
        return True
    timer = state.timers.get(timer_id)
    return timer is not None and timer.due_at > until


def catch_up(ctx: StepContext, *, until: datetime) -> None:
    """Apply the time-based stage changes due in ``(stage_entered_at, until]``, in order."""
    entered = ctx.state.stage_entered_at
    for instant in ctx.timeline().instants:
        if instant > until:
            break
        if entered is None or instant > entered:
            update(ctx, evaluated_at=instant, at=instant, cause="time")


def update(
    ctx: StepContext,
    *,
    evaluated_at: datetime,
    at: datetime,
    cause: TransitionCause,
    event: Event | None = None,
    orders_before: int | None = None,
    cause_message_id: str | None = None,
) -> None:
    """Recompute the stage at ``evaluated_at``; on a change record it and start stage rules.

    The transition's ``cause_message_id`` is ``event``'s message id, else ``cause_message_id``.
    """
    state = ctx.state
    new = ctx.timeline().stage_at(evaluated_at)  # = next_stage(lifecycle, profile, now=…)
    old = state.stage
    if new == old:
        return
    if state.stage_entered_at is not None:
        at = max(at, state.stage_entered_at)  # a late event cannot rewrite stage history
    reactivated = (
        old in ctx.lifecycle.reactivation_from
        and orders_before is not None
        and state.profile.orders > orders_before
    )
    ctx.effects.append(
        StageTransition(
            customer_key=ctx.customer_key,
            from_stage=old,
            to_stage=new,
            at=at,
            cause=cause,
            cause_event=event.event if event else None,
            cause_message_id=event.message_id if event else cause_message_id,
            reactivated=reactivated,
        )
    )
    state.stage = new
    state.stage_entered_at = at
    ctx.invalidate_views(profile=False)
    start_stage_rules(ctx, StageChanged(from_=old, to=new, reactivated=reactivated, at=at))


def start_stage_rules(ctx: StepContext, change: StageChanged) -> None:
    """Enter every live rule triggered by ``change`` (key order, deterministic)."""
    message_id = derive.stage_message_id(change.from_, change.to, change.at)
    for rule in ctx.rules.active():
        trigger = rule.trigger
        if isinstance(trigger, StageEnteredTrigger):
            fires = trigger.stage == change.to
        elif isinstance(trigger, StageChangedTrigger):
            fires = (not trigger.from_ or change.from_ in trigger.from_) and (
                not trigger.to or change.to in trigger.to
            )
        else:
            continue
        if fires:
            ref = TriggerRef(type=trigger.type, message_id=message_id, stage=change.to)
            try_start(ctx, rule, ref, at=change.at)


def reschedule_timer(ctx: StepContext) -> None:
    """Keep exactly one stage timer, due when time alone would next change the stage."""
    state = ctx.state
    state.stage_model = ctx.lifecycle.compiled.tag
    due = ctx.timeline().next_change_at(ctx.now)  # = next_stage_change_at(…, now=ctx.now)
    current = state.timers.get(state.stage_timer_id) if state.stage_timer_id else None
    if current is not None and current.due_at == due:
        return
    ctx.cancel_timer(state.stage_timer_id)
    state.stage_timer_id = None
    if due is not None:
        timer_id = derive.stage_timer_id(ctx.customer_key, due)
        ctx.set_timer(timer_id, due, "stage")
        state.stage_timer_id = timer_id
