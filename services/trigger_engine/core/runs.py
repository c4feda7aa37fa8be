"""Rule runs: entering a rule, walking its steps, exiting, completing, converting, and
cancelling the last sends of a completed run when an exit event comes after it.

Run time is *logical*: a run starts at its trigger's time, a wait ends at ``start + wait``
and the next wait counts from there. Sends and offer expiries therefore do not drift with
processing delays, and replays produce byte-identical actions.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from shared.envelope import Event

from . import derive, sending
from .context import StepContext
from .effects import (
    ActionContext,
    CancelActions,
    Converted,
    EmitAction,
    ExitReason,
    HeldOut,
    OfferOut,
    RunCompleted,
    RunExited,
    RunStarted,
    TriggerRef,
)
from .policy import Defer, Skip
from .rules import Rule, SendSpec, SendStep, WaitStep
from .state import COMPLETED_RUN_HORIZON, COMPLETED_RUNS_KEPT, CompletedRun, Run


def may_enter(ctx: StepContext, rule: Rule, *, at: datetime) -> bool:
    """The cheap half of :func:`try_start`'s checks (age, active run, re-entry): callers
    that would build a trigger for a rule ask this first."""
    state = ctx.state
    if ctx.now - at > rule.max_event_age or state.active_run(rule.key) is not None:
        return False
    last = state.last_entry.get(rule.key)
    return last is None or (rule.reentry is not None and at - last >= rule.reentry)


def try_start(ctx: StepContext, rule: Rule, trigger: TriggerRef, *, at: datetime) -> Run | None:
    """Enter ``rule`` if it is allowed now; returns the new run or None.

    Refused when: the trigger is older than ``max_event_age``, the customer is already in an
    active run of the rule, re-entry is not yet (or never) allowed, the audience does not
    match, or this very run already exists (a replayed trigger).
    """
    state = ctx.state
    if not may_enter(ctx, rule, at=at) or not ctx.matches(rule.audience):
        return None
    last = state.last_entry.get(rule.key)
    run_id = derive.run_id(rule.key, rule.version, ctx.customer_key, trigger.message_id)
    if run_id in state.runs:
        return None
    run = Run(
        run_id=run_id,
        rule_key=rule.key,
        rule_version=rule.version,
        holdout=derive.holdout_bucket(rule.key, ctx.customer_key) < rule.holdout_percent,
        trigger=trigger,
        started_at=at,
        goal_deadline=at + rule.goal.within if rule.goal else None,
    )
    state.runs[run_id] = run
    state.last_entry[rule.key] = max(at, last) if last else at
    ctx.effects.append(RunStarted(**_record(ctx, run, at), trigger=run.trigger))
    advance(ctx, run, rule, at=at)
    return run


def advance(ctx: StepContext, run: Run, rule: Rule, *, at: datetime) -> None:
    """Execute steps from ``run.step_index`` until a wait (timer set) or the end."""
    while run.step_index < len(rule.steps):
        step = rule.steps[run.step_index]
        if isinstance(step, WaitStep):
            timer_id = derive.step_timer_id(run.run_id, run.step_index)
            run.timer_id = timer_id
            ctx.set_timer(
                timer_id, at + step.wait, "step", run_id=run.run_id, rule_key=run.rule_key
            )
            return
        assert isinstance(step, SendStep)
        if not ctx.matches(rule.audience):
            exit_run(ctx, run, "audience", at=at)
            return
        if not _send(ctx, run, step.send, at=at):
            return  # deferred by quiet hours: a timer resumes this very step
        run.step_index += 1
    run.status = "completed"
    run.ended_at = at
    ctx.effects.append(RunCompleted(**_record(ctx, run, at)))
    if run.emitted and rule.exit_when:
        _remember_completed(ctx, run)


def _remember_completed(ctx: StepContext, run: Run) -> None:
    """Keep what :func:`cancel_completed` needs of a run that completed after sending."""
    kept = ctx.state.completed_runs
    kept.append(
        CompletedRun(
            run_id=run.run_id,
            rule_key=run.rule_key,
            rule_version=run.rule_version,
            trigger_message_id=run.trigger.message_id,
            started_at=run.started_at,
            completed_at=ctx.now,
        )
    )
    if len(kept) > COMPLETED_RUNS_KEPT:
        del kept[: len(kept) - COMPLETED_RUNS_KEPT]


def _send(ctx: StepContext, run: Run, send: SendSpec, *, at: datetime) -> bool:
    """Send (or hold out, or skip by policy) and return True, or defer and return False."""
    action_id = derive.action_id(run.run_id, run.step_index)
    if run.holdout:
        held = HeldOut(**_record(ctx, run, at), step=run.step_index, action_id=action_id)
        ctx.effects.append(held)
        return True
    decision = sending.admit(ctx, run, send.channel, action_id=action_id, at=at)
    if isinstance(decision, Defer):
        return False
    if isinstance(decision, Skip):
        return True
    offer = None
    if send.offer is not None:
        expires_in = send.offer.expires_in
        offer = OfferOut(
            code=send.offer.code,
            kind=send.offer.kind,
            value=send.offer.value,
            expires_at=at + expires_in if expires_in is not None else None,
        )
    ctx.effects.append(
        EmitAction(
            customer_key=ctx.customer_key,
            action_id=action_id,
            run_id=run.run_id,
            rule=run.rule_key,
            rule_version=run.rule_version,
            step=run.step_index,
            channel=send.channel,
            template=send.template,
            destination=send.destination,
            customer=ctx.snapshot(),
            context=ActionContext(cart=ctx.cart(), offer=offer, trigger=run.trigger),
            created_at=at,
        )
    )
    run.emitted = True
    return True


def exit_run(ctx: StepContext, run: Run, reason: ExitReason, *, at: datetime) -> None:
    """End an active run now, cancelling the wait it is in; a run that has emitted actions
    also cancels those the messenger has not delivered yet (``CancelActions``)."""
    ctx.cancel_timer(run.timer_id)
    run.timer_id = None
    run.status = "exited"
    run.ended_at = at
    record = _record(ctx, run, at)
    ctx.effects.append(RunExited(**record, reason=reason, step=run.step_index))
    if run.emitted:
        cancel_id = derive.cancel_id(run.run_id)
        ctx.effects.append(CancelActions(**record, cancel_id=cancel_id, reason=reason))


def on_step_timer(ctx: StepContext, run: Run, *, due_at: datetime) -> None:
    """The wait ``run`` was in is over: go on with the next step, on the pinned version.

    A run whose timer was a quiet-hours deferral is still on its send step: it runs again.
    """
    run.timer_id = None
    rule = ctx.rules.pinned(run.rule_key, run.rule_version)
    if rule is None:
        exit_run(ctx, run, "rule_version_missing", at=due_at)
    elif not ctx.rules.is_live(run.rule_key):
        exit_run(ctx, run, "rule_disabled", at=due_at)
    else:
        if isinstance(rule.steps[run.step_index], WaitStep):
            run.step_index += 1  # a send deferred by quiet hours resumes at its own step
        advance(ctx, run, rule, at=due_at)


def on_event(ctx: StepContext, event: Event) -> None:
    """Goals first (an order can both convert and end a run), then ``exit_when``.

    Only events at or after a run's start count: an order placed before the cart was
    filled neither ends the cart reminder nor converts it. A late event whose time falls
    inside a wait still ends the run, cancelling the pending send. Then the completed runs
    whose last sends the event cancels (:func:`cancel_completed`).
    """
    runs = ctx.state.runs
    for run in sorted(runs.values(), key=_by_id) if len(runs) > 1 else runs.values():
        rule = ctx.rules.pinned(run.rule_key, run.rule_version)
        if rule is None or not _counts(event, run.started_at, run.trigger.message_id):
            continue
        goal = rule.goal
        if (
            goal is not None
            and not run.converted
            and run.goal_deadline is not None
            and event.event == goal.event
            and event.timestamp <= run.goal_deadline
            and ctx.matches(goal.where, event)
        ):
            run.converted = True
            ctx.effects.append(
                Converted(**_record(ctx, run, event.timestamp), message_id=event.message_id)
            )
        if run.status == "active" and _exits(ctx, rule, event):
            exit_run(ctx, run, "exit_when", at=max(event.timestamp, run.started_at))
    if ctx.state.completed_runs:
        cancel_completed(ctx, event)


def cancel_completed(ctx: StepContext, event: Event) -> None:
    """A run that completed by sending, of a rule with ``exit_when``, is over for the
    engine, but the messenger may still hold its last sends (queued, or between retries):
    an event that would have ended it, by the very test :func:`on_event` makes for an active
    run, cancels them (``CancelActions``, reason ``exit_when``, with the id an exit would have
    given) and forgets the run. There is no ``RunExited``: the run completed.
    """
    kept = ctx.state.completed_runs
    cancelled: list[CompletedRun] = []
    for done in kept:
        if ctx.now - done.completed_at > COMPLETED_RUN_HORIZON:
            continue  # forgotten at the end of this step (prune_completed)
        rule = ctx.rules.pinned(done.rule_key, done.rule_version)
        if (
            rule is None
            or not _counts(event, done.started_at, done.trigger_message_id)
            or not _exits(ctx, rule, event)
        ):
            continue
        ctx.effects.append(
            CancelActions(
                customer_key=ctx.customer_key,
                run_id=done.run_id,
                rule=done.rule_key,
                rule_version=done.rule_version,
                holdout=False,  # a held-out run sends nothing, so it is never kept
                at=max(event.timestamp, done.started_at),
                cancel_id=derive.cancel_id(done.run_id),
                reason="exit_when",
            )
        )
        cancelled.append(done)
    if cancelled:
        ctx.state.completed_runs = [done for done in kept if done not in cancelled]


def prune_completed(ctx: StepContext) -> None:
    """Forget the completed runs past :data:`.state.COMPLETED_RUN_HORIZON`."""
    kept = ctx.state.completed_runs
    now = ctx.now
    if any(now - done.completed_at > COMPLETED_RUN_HORIZON for done in kept):
        ctx.state.completed_runs = [
            done for done in kept if now - done.completed_at <= COMPLETED_RUN_HORIZON
        ]


def _counts(event: Event, started_at: datetime, trigger_message_id: str) -> bool:
    """Whether ``event`` may convert or end a run that started at ``started_at`` (not before
    it, and not its own trigger)."""
    return event.timestamp >= started_at and event.message_id != trigger_message_id


def _exits(ctx: StepContext, rule: Rule, event: Event) -> bool:
    """Whether ``event`` is one of ``rule``'s ``exit_when`` (its ``where`` holding)."""
    return any(
        event.event == cond.event and ctx.matches(cond.where, event) for cond in rule.exit_when
    )


def _by_id(run: Run) -> str:
    return run.run_id


class _RecordFields(TypedDict):
    customer_key: str
    run_id: str
    rule: str
    rule_version: int
    holdout: bool
    at: datetime


def _record(ctx: StepContext, run: Run, at: datetime) -> _RecordFields:
    return {
        "customer_key": ctx.customer_key,
        "run_id": run.run_id,
        "rule": run.rule_key,
        "rule_version": run.rule_version,
        "holdout": run.holdout,
        "at": at,
    }
