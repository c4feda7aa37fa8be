"""``step``: the engine's whole decision logic as one pure function.

    new_state, effects = step(state, input, rules=..., lifecycle=..., now=..., policy=...)

The I/O layer calls it once per input for one customer, then, in one transaction, stores
``new_state`` and applies ``effects`` (timers, outbox rows for actions, stage history, run
stats), all keyed by derived ids so a replay writes nothing new. ``now`` is the processing
clock (wall clock live, virtual in back-tests); event time is ``Event.timestamp``.

Stage changes are handled inside the call: ``step`` derives the ``StageChanged`` and starts
the stage-triggered rules itself (one level deep, since runs never alter the profile).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final, NamedTuple

from shared.envelope import Event

from . import derive, inactivity, runs, stages
from .context import StepContext
from .effects import Effect, TriggerRef
from .inputs import LifecycleChanged, TimerFired
from .lifecycle import LifecycleModel
from .plain import deep_copy
from .policy import NO_POLICY, SendPolicy
from .profile import apply_event_in_place
from .rules import EventTrigger
from .ruleset import RuleSet
from .state import RECENT_EVENT_IDS, CustomerState, PendingTimer

#: Finished runs are kept this long past their goal deadline so a late goal event counts.
LATE_GOAL_GRACE: Final = timedelta(days=1)


StepInput = Event | TimerFired | LifecycleChanged


class StepResult(NamedTuple):
    state: CustomerState
    effects: list[Effect]


def step(
    state: CustomerState,
    input: StepInput,
    *,
    rules: RuleSet,
    lifecycle: LifecycleModel,
    now: datetime,
    policy: SendPolicy = NO_POLICY,
) -> StepResult:
    """Apply one input to one customer's state; ``state`` itself is not modified.

    No-ops (same state, no effects): an event already seen (by ``event_id``), a timer no
    longer pending (fired or cancelled), a timer fired before its ``due_at``. A fired timer
    is looked up by ``timer_id`` in the state; its other fields are informational.
    ``LifecycleChanged`` is never a no-op by this test, but has no effects when the stage and
    stage timer already follow ``lifecycle`` (see :func:`follow_lifecycle`).
    All datetimes are timezone-aware. ``policy`` (consent, frequency caps, quiet hours) is
    applied to every send; the default has no caps and no quiet hours.
    """
    if is_noop(state, input, now=now):
        return StepResult(state, [])
    ctx = StepContext(
        state=deep_copy(state), rules=rules, lifecycle=lifecycle, now=now, policy=policy
    )
    apply(ctx, input)
    return StepResult(ctx.state, ctx.effects)


def is_noop(state: CustomerState, input: StepInput, *, now: datetime) -> bool:
    """Whether ``input`` leaves ``state`` unchanged with no effects (see :func:`step`)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    if isinstance(input, Event):
        return input.event_id_text in state.recent_event_ids
    if isinstance(input, LifecycleChanged):
        return False
    pending = state.timers.get(input.timer_id)
    return pending is None or now < pending.due_at


def apply(ctx: StepContext, input: StepInput) -> None:
    """The body of :func:`step`: apply ``input`` to ``ctx.state`` *in place*.

    Only for an input that is not a no-op (:func:`is_noop`), on a state the caller owns:
    :func:`step` hands it a fresh copy, :func:`.fold.advance` a state its caller owns.
    """
    if isinstance(input, LifecycleChanged):
        follow_lifecycle(ctx, input)
        return
    if isinstance(input, Event):
        ctx.arrived_at = input.received_at
        _on_event(ctx, input)
    else:
        _on_timer(ctx, ctx.state.timers.pop(input.timer_id))
    if not stages.settled(ctx, ctx.now):
        stages.reschedule_timer(ctx)
    inactivity.prune(ctx)
    prune_runs(ctx)
    if ctx.state.completed_runs:
        runs.prune_completed(ctx)


def _on_event(ctx: StepContext, event: Event) -> None:
    state = ctx.state
    seen = state.recent_event_ids  # the step's own list (see ``apply``): changed in place
    seen.append(event.event_id_text)
    if len(seen) > RECENT_EVENT_IDS:
        del seen[: len(seen) - RECENT_EVENT_IDS]
    until = min(event.timestamp, ctx.now)
    if not stages.settled(ctx, until):
        stages.catch_up(ctx, until=until)
    orders_before = state.profile.orders
    # ctx.state is the step's own copy
    ctx.profile_changed(apply_event_in_place(state.profile, event))
    if (state.runs or state.completed_runs) and ctx.rules.listens_to(event.event):
        runs.on_event(ctx, event)
    inactivity.on_event(ctx, event)
    if not stages.settled(ctx, ctx.now):
        stages.update(
            ctx,
            evaluated_at=ctx.now,
            at=event.timestamp,
            cause="event",
            event=event,
            orders_before=orders_before,
        )
    for rule in ctx.rules.triggered_by(event.event):
        trigger = rule.trigger
        if (
            isinstance(trigger, EventTrigger)
            and runs.may_enter(ctx, rule, at=event.timestamp)
            and ctx.matches(trigger.where, event)
        ):
            ref = TriggerRef(type="event", event=event.event, message_id=event.message_id)
            runs.try_start(ctx, rule, ref, at=event.timestamp)


def _on_timer(ctx: StepContext, timer: PendingTimer) -> None:
    state = ctx.state
    if timer.kind == "stage":
        state.stage_timer_id = None
    stages.catch_up(ctx, until=ctx.now)
    if timer.kind == "step" and timer.run_id is not None:
        run = state.runs.get(timer.run_id)
        if run is not None and run.status == "active" and run.timer_id == timer.timer_id:
            runs.on_step_timer(ctx, run, due_at=timer.due_at)
    elif timer.kind == "inactivity":
        inactivity.on_timer(ctx, timer)
    stages.update(ctx, evaluated_at=ctx.now, at=ctx.now, cause="time")


def follow_lifecycle(ctx: StepContext, change: LifecycleChanged) -> None:
    """Bring the stage and the stage timer in line with ``ctx.lifecycle`` (the new model).

    The stage becomes the one the model gives at ``now`` (a ``"model"`` transition, which
    starts stage rules like any other). A stage timer already due is fired first, exactly as
    the owner's timers would fire it under this model, so a change that is simply time passing
    keeps its cause (``"time"``) and instant. Nothing else is touched (no pruning): a
    customer the model leaves where it was gets no effects and an unchanged state, so the
    caller need not write it.
    """
    state = ctx.state
    evaluated_under = state.stage_model
    timer = state.timers.get(state.stage_timer_id) if state.stage_timer_id else None
    if timer is not None and timer.due_at <= ctx.now:
        ctx.cancel_timer(timer.timer_id)
        _on_timer(ctx, timer)
    stages.update(
        ctx,
        evaluated_at=ctx.now,
        at=ctx.now,
        cause="model",
        cause_message_id=derive.lifecycle_message_id(change.lifecycle_version),
    )
    stages.reschedule_timer(ctx)
    if not ctx.effects:
        # Unchanged means unchanged: the next event evaluates this customer under the new
        # model in full once (and records that it did), instead of the pass writing it now.
        state.stage_model = evaluated_under


def prune_runs(ctx: StepContext) -> None:
    """Forget finished runs once no goal can still convert them."""
    runs = ctx.state.runs
    now = ctx.now
    done = [
        run_id
        for run_id, run in runs.items()
        if run.status != "active"
        and (
            run.goal_deadline is None or run.converted or now > run.goal_deadline + LATE_GOAL_GRACE
        )
    ]
    for run_id in done:  # no effects: the order does not matter
        del runs[run_id]
