"""Folding an anonymous customer into a known one (``identify`` / ``alias``).

The I/O layer decides *when* (an event names both a user id and an anonymous id, or an
alias's ``previous_id``, whose state exists under the other key); this decides *what*: the
profile merges (open cart and counts carry over), runs in flight carry over unless the
known customer is already in the same rule, so do the completed runs whose last sends a
later exit event still cancels (``CustomerState.completed_runs``), and the anonymous pending
timers move to the known customer (re-announced as ``SetTimer`` with the known key:
``SetTimer`` is an upsert by ``timer_id``). Afterwards the I/O layer deletes the anonymous state.
"""

from __future__ import annotations

from datetime import datetime

from . import inactivity, runs, sending, stages
from .context import StepContext
from .effects import CancelTimer
from .engine import StepResult, prune_runs
from .lifecycle import LifecycleModel
from .plain import deep_copy
from .policy import NO_POLICY, SendPolicy
from .profile import merge
from .ruleset import RuleSet
from .state import COMPLETED_RUNS_KEPT, RECENT_EVENT_IDS, CustomerState


def merge_states(
    known: CustomerState,
    anonymous: CustomerState,
    *,
    rules: RuleSet,
    lifecycle: LifecycleModel,
    now: datetime,
    policy: SendPolicy = NO_POLICY,
) -> StepResult:
    """The known customer's state with ``anonymous`` folded in; neither input is modified."""
    ctx = StepContext(
        state=deep_copy(known), rules=rules, lifecycle=lifecycle, now=now, policy=policy
    )
    anon = deep_copy(anonymous)
    state = ctx.state
    sending.merge_sends(state, anon)
    orders_before = state.profile.orders
    state.profile = merge(state.profile, anon.profile)
    ctx.invalidate_views()
    for timer in sorted(anon.timers.values(), key=lambda t: t.timer_id):
        if timer.kind == "stage":
            ctx.effects.append(CancelTimer(customer_key=anon.customer_key, timer_id=timer.timer_id))
        else:
            ctx.set_timer(
                timer.timer_id,
                timer.due_at,
                timer.kind,
                run_id=timer.run_id,
                rule_key=timer.rule_key,
                arrived_at=timer.arrived_at,
            )
    for run_id in sorted(anon.runs):
        run = anon.runs[run_id]
        if run_id in state.runs:
            continue
        state.runs[run_id] = run
        if run.status == "active":
            others = [r for r in state.runs.values() if r is not run and r.rule_key == run.rule_key]
            if any(other.status == "active" for other in others):
                runs.exit_run(ctx, run, "merged", at=now)
                del state.runs[run_id]
    if anon.completed_runs:
        known_ids = {done.run_id for done in state.completed_runs}
        carried = [done for done in anon.completed_runs if done.run_id not in known_ids]
        merged = sorted([*state.completed_runs, *carried], key=lambda d: d.completed_at)
        state.completed_runs = merged[-COMPLETED_RUNS_KEPT:]
    for key, clock in sorted(anon.inactivity.items()):
        mine = state.inactivity.get(key)
        if mine is None or clock.last_seen_at > mine.last_seen_at:
            if mine is not None:
                ctx.cancel_timer(mine.timer_id)
            state.inactivity[key] = clock
        else:
            ctx.cancel_timer(clock.timer_id)
    for key, at in anon.last_entry.items():
        state.last_entry[key] = max(at, state.last_entry.get(key, at))
    seen = dict.fromkeys([*anon.recent_event_ids, *state.recent_event_ids])
    state.recent_event_ids = list(seen)[-RECENT_EVENT_IDS:]
    state.merged = list(dict.fromkeys([*state.merged, *anon.merged, anon.customer_key]))
    stages.update(ctx, evaluated_at=now, at=now, cause="merge", orders_before=orders_before)
    stages.reschedule_timer(ctx)
    inactivity.prune(ctx)
    prune_runs(ctx)
    if state.completed_runs:
        runs.prune_completed(ctx)
    return StepResult(ctx.state, ctx.effects)
