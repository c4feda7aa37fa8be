"""Inactivity triggers: "``event`` not seen ``for`` a duration since the last one".

Each live inactivity rule keeps a clock per customer: the event time of the last matching
event and one durable timer at ``last_seen + for``. Every newer occurrence restarts the
clock (cancel + set). When the timer fires the rule is entered once; the clock then rests
until the event is seen again, so a silent customer is not re-triggered every period.
"""

from __future__ import annotations

from shared.envelope import Event

from . import derive
from .context import StepContext
from .effects import TriggerRef
from .rules import InactivityTrigger
from .runs import try_start
from .state import InactivityClock, PendingTimer


def on_event(ctx: StepContext, event: Event) -> None:
    """Restart the clocks of the live inactivity rules watching ``event``."""
    for rule in ctx.rules.watching(event.event):
        trigger = rule.trigger
        if not isinstance(trigger, InactivityTrigger):
            continue
        clock = ctx.state.inactivity.get(rule.key)
        if clock is not None and clock.last_seen_at >= event.timestamp:
            continue  # an older occurrence arriving late does not move the clock back
        if clock is not None:
            ctx.cancel_timer(clock.timer_id)
        timer_id = derive.inactivity_timer_id(
            ctx.customer_key, rule.key, rule.version, event.timestamp
        )
        ctx.set_timer(timer_id, event.timestamp + trigger.for_, "inactivity", rule_key=rule.key)
        ctx.state.inactivity[rule.key] = InactivityClock(
            event=trigger.event, last_seen_at=event.timestamp, timer_id=timer_id
        )


def on_timer(ctx: StepContext, timer: PendingTimer) -> None:
    """The watched event stayed away for the whole period: enter the rule."""
    key = timer.rule_key or ""
    clock = ctx.state.inactivity.get(key)
    if clock is None or clock.timer_id != timer.timer_id:
        return
    clock.timer_id = None
    rule = ctx.rules.current.get(key)
    if rule is None or not rule.enabled or not isinstance(rule.trigger, InactivityTrigger):
        return
    ref = TriggerRef(type="inactivity", event=clock.event, message_id=timer.timer_id)
    try_start(ctx, rule, ref, at=timer.due_at)


def prune(ctx: StepContext) -> None:
    """Drop clocks of rules that are gone, disabled, or no longer watch the same event."""
    clocks = ctx.state.inactivity
    if not clocks:
        return
    current = ctx.rules.current
    gone = []
    for key, clock in clocks.items():
        rule = current.get(key)
        trigger = rule.trigger if rule is not None and rule.enabled else None
        if not isinstance(trigger, InactivityTrigger) or trigger.event != clock.event:
            gone.append(key)
    for key in sorted(gone):  # key order: the cancellations are effects
        ctx.cancel_timer(clocks.pop(key).timer_id)
