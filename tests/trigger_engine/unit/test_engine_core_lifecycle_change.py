"""``LifecycleChanged``: a customer follows a new lifecycle model without any event of theirs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine_core_support import T0, at, event, of_type, rule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.trigger_engine.core.effects import (
    CancelTimer,
    Effect,
    RunStarted,
    SetTimer,
    StageTransition,
)
from services.trigger_engine.core.engine import step
from services.trigger_engine.core.inputs import LifecycleChanged, TimerFired
from services.trigger_engine.core.lifecycle import (
    LifecycleModel,
    default_lifecycle,
    next_stage,
    next_stage_change_at,
)
from services.trigger_engine.core.plain import deep_copy
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState

DEFAULT = default_lifecycle()
LOYAL_AT_TWO = default_lifecycle(loyal_orders=2, repeat_orders=2)
AT_RISK_AT_30 = default_lifecycle(at_risk_after=timedelta(days=30), lapsed_after=timedelta(days=60))
ON_LOYAL = rule(
    key="on-loyal",
    trigger={"type": "stage_entered", "stage": "loyal"},
    steps=[{"send": {"channel": "email", "template": "thanks"}}],
)
NO_RULES = RuleSet.of([])


def buyer(orders: int, *, last_order: datetime, model: LifecycleModel = DEFAULT) -> CustomerState:
    """A customer who placed ``orders`` orders, the last at ``last_order``, under ``model``."""
    state = CustomerState.new("user-1")
    for n in range(orders):
        when = last_order - timedelta(hours=orders - 1 - n)
        order = event("Order Completed", when, properties={"order_id": f"o{n}", "total": 20})
        state, _ = step(state, order, rules=NO_RULES, lifecycle=model, now=when)
    return state


def change(
    state: CustomerState, model: LifecycleModel, *, now: datetime, rules: RuleSet = NO_RULES
) -> tuple[CustomerState, list[Effect]]:
    result = step(
        state, LifecycleChanged(lifecycle_version=2), rules=rules, lifecycle=model, now=now
    )
    return result.state, result.effects


def test_a_lower_loyal_threshold_moves_a_repeat_buyer_and_starts_loyal_rules() -> None:
    state = buyer(3, last_order=T0)
    assert state.stage == "repeat"
    rules = RuleSet.of([ON_LOYAL])

    after, effects = change(state, LOYAL_AT_TWO, now=at(days=1), rules=rules)

    [transition] = of_type(effects, "stage_transition")
    assert (transition.from_stage, transition.to_stage) == ("repeat", "loyal")
    assert (transition.cause, transition.at) == ("model", at(days=1))
    assert transition.cause_event is None
    assert transition.cause_message_id == "lifecycle:v2"
    assert not transition.reactivated
    [started] = of_type(effects, "run_started")
    assert isinstance(started, RunStarted)
    assert (started.rule, started.trigger.type, started.trigger.stage) == (
        "on-loyal",
        "stage_entered",
        "loyal",
    )
    [sent] = of_type(effects, "emit_action")
    assert sent.customer.stage == "loyal"
    assert (after.stage, after.stage_entered_at) == ("loyal", at(days=1))
    # at_risk is still 90 days after the last order: the stage timer stays as it was
    assert not of_type(effects, "set_timer") and not of_type(effects, "cancel_timer")
    assert after.stage_timer_id == state.stage_timer_id
    assert state.stage == "repeat", "step does not modify its input"


def test_following_the_same_model_twice_changes_nothing_the_second_time() -> None:
    rules = RuleSet.of([ON_LOYAL])
    once, effects = change(buyer(3, last_order=T0), LOYAL_AT_TWO, now=at(days=1), rules=rules)
    assert effects
    twice, again = change(once, LOYAL_AT_TWO, now=at(days=2), rules=rules)
    assert again == []
    assert twice == once


def test_a_model_that_keeps_the_customer_where_they_are_has_no_effects() -> None:
    state = buyer(1, last_order=T0)
    after, effects = change(state, DEFAULT, now=at(days=10))
    assert effects == []
    assert after == state


def test_a_shorter_at_risk_window_moves_a_quiet_buyer_and_moves_the_stage_timer() -> None:
    state = buyer(1, last_order=T0)
    [old_timer] = state.timers.values()
    assert old_timer.due_at == at(days=90)

    after, effects = change(state, AT_RISK_AT_30, now=at(days=40))

    [transition] = of_type(effects, "stage_transition")
    assert (transition.from_stage, transition.to_stage, transition.cause) == (
        "first_time",
        "at_risk",
        "model",
    )
    assert transition.at == at(days=40)
    assert [c.timer_id for c in effects if isinstance(c, CancelTimer)] == [old_timer.timer_id]
    [new_timer] = [s for s in effects if isinstance(s, SetTimer)]
    assert (new_timer.kind, new_timer.due_at) == ("stage", at(days=60))
    assert after.stage_timer_id == new_timer.timer_id
    assert set(after.timers) == {new_timer.timer_id}


def test_a_changed_window_that_keeps_the_stage_only_reschedules_the_timer() -> None:
    state = buyer(2, last_order=T0)
    after, effects = change(state, AT_RISK_AT_30, now=at(days=10))
    assert not of_type(effects, "stage_transition")
    assert [type(e).__name__ for e in effects] == ["CancelTimer", "SetTimer"]
    assert after.stage == "repeat"
    assert after.timers[after.stage_timer_id or ""].due_at == at(days=30)


def test_a_stage_timer_already_due_fires_as_time_not_as_a_model_change() -> None:
    """The pass may reach a customer before the timer worker: the change keeps its instant."""
    state = buyer(1, last_order=T0)
    after, effects = change(state, DEFAULT, now=at(days=95))
    [transition] = of_type(effects, "stage_transition")
    assert (transition.to_stage, transition.cause, transition.at) == (
        "at_risk",
        "time",
        at(days=90),
    )
    # what firing the timer itself would have produced, apart from the row it deletes
    [timer] = state.timers.values()
    fired = TimerFired(timer_id=timer.timer_id, kind="stage", due_at=timer.due_at)
    by_timer = step(state, fired, rules=NO_RULES, lifecycle=DEFAULT, now=at(days=95))
    assert by_timer.state.stage == after.stage == "at_risk"
    assert of_type(by_timer.effects, "stage_transition") == [transition]
    assert [e for e in effects if not isinstance(e, CancelTimer)] == by_timer.effects


def test_the_same_change_at_the_same_time_gives_the_same_ids() -> None:
    rules = RuleSet.of([ON_LOYAL])
    state = buyer(3, last_order=T0)
    first = change(state, LOYAL_AT_TWO, now=at(days=1), rules=rules)
    second = change(deep_copy(state), LOYAL_AT_TWO, now=at(days=1), rules=rules)
    assert first == second
    assert isinstance(first[1][0], StageTransition)


# -- property: after the change the customer is exactly where the new model puts them -----

models = st.builds(
    lambda at_risk, lapsed_extra, loyal, repeat: default_lifecycle(
        at_risk_after=timedelta(days=at_risk),
        lapsed_after=timedelta(days=at_risk + lapsed_extra),
        loyal_orders=max(loyal, repeat),
        repeat_orders=repeat,
    ),
    st.integers(min_value=1, max_value=120),
    st.integers(min_value=1, max_value=120),
    st.integers(min_value=2, max_value=6),
    st.integers(min_value=2, max_value=6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=st.integers(min_value=0, max_value=7),
    old=models,
    new=models,
    days_later=st.integers(min_value=0, max_value=400),
    timers_lag=st.booleans(),
)
def test_after_a_change_the_stage_and_timer_follow_the_new_model(
    orders: int, old: LifecycleModel, new: LifecycleModel, days_later: int, timers_lag: bool
) -> None:
    rules = RuleSet.of([ON_LOYAL])
    state = buyer(orders, last_order=T0, model=old)
    now = at(days=days_later)
    if not timers_lag:  # the timer worker kept up under the old model until now
        state = _fire_due(state, old, now=now)

    after, effects = change(state, new, now=now, rules=rules)

    assert after.stage == next_stage(new, after.profile, now=now)
    stage_timers = [t for t in after.timers.values() if t.kind == "stage"]
    due = next_stage_change_at(new, after.profile, now=now)
    assert [t.due_at for t in stage_timers] == ([due] if due else [])
    assert after.stage_timer_id == (stage_timers[0].timer_id if stage_timers else None)
    transitions = [e for e in effects if isinstance(e, StageTransition)]
    assert all(t.at <= now for t in transitions)
    assert [t.cause for t in transitions if t.cause == "model"] in ([], ["model"])
    if not effects:
        assert after == state
    again, more = change(after, new, now=now, rules=rules)
    assert more == []
    assert again == after


def _fire_due(state: CustomerState, model: LifecycleModel, *, now: datetime) -> CustomerState:
    while True:
        due = [t for t in state.timers.values() if t.due_at <= now]
        if not due:
            return state
        timer = min(due, key=lambda t: t.due_at)
        fired: Any = TimerFired(timer_id=timer.timer_id, kind=timer.kind, due_at=timer.due_at)
        state, _ = step(state, fired, rules=NO_RULES, lifecycle=model, now=now)
