"""Property tests over the pure core: arbitrary interleavings, replays and holdout buckets."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from engine_core_support import T0, rule
from engine_core_support import event as make_event
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.trigger_engine.core.derive import holdout_bucket
from services.trigger_engine.core.effects import CancelTimer, Effect, SetTimer
from services.trigger_engine.core.engine import step
from services.trigger_engine.core.inputs import TimerFired
from services.trigger_engine.core.lifecycle import default_lifecycle, next_stage
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState
from shared.envelope import Event

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CART = rule(
    key="cart",
    steps=[
        {"wait": "PT1H"},
        {"send": {"channel": "email", "template": "reminder"}},
        {"wait": "PT2H"},
        {"send": {"channel": "email", "template": "discount"}},
    ],
    exit_when=[{"event": "Order Completed"}],
    reentry="PT0S",
)
SHORT = default_lifecycle(at_risk_after=timedelta(hours=3), lapsed_after=timedelta(hours=6))

# An op is (kind, minutes the clock moves first, minutes the event time lags behind the clock).
Script = list[tuple[str, int, int]]
ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "order", "fire", "fire", "remove", "identify", "refund"]),
        st.integers(min_value=0, max_value=120),
        st.integers(min_value=0, max_value=90),
    ),
    min_size=1,
    max_size=30,
)


@dataclass
class Harness:
    """A tiny in-memory I/O layer whose timer service may lag arbitrarily."""

    rules: RuleSet
    lifecycle: Any = field(default_factory=default_lifecycle)
    state: CustomerState = field(default_factory=lambda: CustomerState.new("user-1"))
    timers: dict[str, SetTimer] = field(default_factory=dict)
    log: list[tuple[Any, Any, list[Effect]]] = field(default_factory=list)  # input, now, effects
    now: Any = T0
    orders: int = 0

    def apply(self, item: Event | TimerFired) -> list[Effect]:
        self.state, effects = step(
            self.state, item, rules=self.rules, lifecycle=self.lifecycle, now=self.now
        )
        for effect in effects:
            if isinstance(effect, SetTimer):
                self.timers[effect.timer_id] = effect
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.timer_id, None)
        self.log.append((item, self.now, effects))
        return effects

    def fire_earliest(self) -> None:
        due = [t for t in self.timers.values() if t.due_at <= self.now]
        if due:
            timer = min(due, key=lambda t: (t.due_at, t.timer_id))
            del self.timers[timer.timer_id]
            self.apply(TimerFired(timer_id=timer.timer_id, kind=timer.kind, due_at=timer.due_at))

    def drain(self) -> None:
        while self.timers:
            self.now = max(self.now, min(t.due_at for t in self.timers.values()))
            self.fire_earliest()

    def play(self, script: Script) -> None:
        for index, (kind, advance, lag) in enumerate(script):
            self.now += timedelta(minutes=advance)
            when = self.now - timedelta(minutes=lag)
            if kind == "fire":
                self.fire_earliest()
                continue
            self.apply(self.make(kind, index, when))
        self.drain()

    def make(self, kind: str, index: int, when: Any) -> Event:
        mid = f"op{index}"
        if kind == "add":
            props = {"sku": f"S{index % 3}", "price": 10}
            return make_event("Product Added", when, properties=props, message_id=mid)
        if kind == "remove":
            props = {"sku": f"S{index % 3}"}
            return make_event("Product Removed", when, properties=props, message_id=mid)
        if kind == "identify":
            email = None if index % 2 else f"u{index}@example.com"
            return make_event(None, when, call="identify", traits={"email": email}, message_id=mid)
        if kind == "refund":
            props = {"order_id": f"o{index % 4}"}
            return make_event("Order Cancelled", when, properties=props, message_id=mid)
        self.orders += 1
        props = {"order_id": f"o{index}", "total": 20}
        return make_event("Order Completed", when, properties=props, message_id=mid)


def all_effects(harness: Harness) -> list[Effect]:
    return [effect for _, _, effects in harness.log for effect in effects]


@PROPERTY
@given(ops)
def test_cart_sends_once_per_step_and_never_after_an_order_in_the_run(script: Script) -> None:
    harness = Harness(RuleSet.of([CART]))
    harness.play(script)
    effects = all_effects(harness)
    actions = [e for e in effects if e.type == "emit_action"]
    assert len({a.action_id for a in actions}) == len(actions)
    assert all(n == 1 for n in Counter((a.run_id, a.step) for a in actions).values())

    started: dict[str, Any] = {}  # run id -> start time, for runs started so far
    ended_by_order: set[str] = set()  # runs in flight that saw an order at/after their start
    done: set[str] = set()
    for item, _, produced in harness.log:
        if isinstance(item, Event) and item.event == "Order Completed":
            live = {r for r, at in started.items() if r not in done and item.timestamp >= at}
            ended_by_order |= live
        for effect in produced:
            if effect.type == "emit_action":
                assert effect.run_id not in ended_by_order, "sent after an order in the run"
            elif effect.type == "run_started":
                started[effect.run_id] = effect.at
            elif effect.type in ("run_completed", "run_exited"):
                done.add(effect.run_id)

    finished = Counter(e.run_id for e in effects if e.type in ("run_completed", "run_exited"))
    assert finished == Counter(started.keys())  # after draining, every run ended exactly once
    completed = {e.run_id for e in effects if e.type == "run_completed"}
    sent_steps = Counter(a.run_id for a in actions)
    assert all(sent_steps[run_id] == 2 for run_id in completed)
    assert not completed & ended_by_order
    exited_by_order = {e.run_id for e in effects if e.type == "run_exited"}
    assert exited_by_order == ended_by_order  # and every such run was ended by it
    event(f"runs completed: {min(len(completed), 2)}, ended by an order: {bool(ended_by_order)}")


@PROPERTY
@given(ops)
def test_stage_is_always_the_first_matching_stage(script: Script) -> None:
    harness = Harness(RuleSet.of([CART]), lifecycle=SHORT)
    original_apply = harness.apply
    checked: list[str | None] = []

    def apply_and_check(item: Event | TimerFired) -> list[Effect]:
        effects = original_apply(item)
        state = harness.state
        assert state.stage == next_stage(SHORT, state.profile, now=harness.now)
        checked.append(state.stage)
        return effects

    harness.apply = apply_and_check  # type: ignore[method-assign]
    harness.play(script)
    if any(kind != "fire" for kind, _, _ in script):
        assert checked


@PROPERTY
@given(ops)
def test_replaying_the_same_inputs_yields_the_same_effects(script: Script) -> None:
    first = Harness(RuleSet.of([CART]), lifecycle=SHORT)
    first.play(script)
    second = Harness(RuleSet.of([CART]), lifecycle=SHORT)
    second.play(script)
    assert all_effects(first) == all_effects(second)
    assert first.state == second.state


@PROPERTY
@given(ops)
def test_redelivering_any_input_right_after_itself_adds_no_effects(script: Script) -> None:
    harness = Harness(RuleSet.of([CART]), lifecycle=SHORT)
    harness.play(script)
    replay = Harness(RuleSet.of([CART]), lifecycle=SHORT)
    for item, now, effects in harness.log:
        replay.now = now
        assert replay.apply(item) == effects
        state_after = replay.state
        assert replay.apply(item) == []
        assert replay.state == state_after


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=40))
def test_holdout_bucket_is_deterministic_and_in_range(rule_key: str, customer: str) -> None:
    bucket = holdout_bucket(rule_key, customer)
    assert 0 <= bucket < 100
    assert holdout_bucket(rule_key, customer) == bucket


def test_holdout_share_matches_the_percentage_and_differs_per_rule() -> None:
    customers = [f"customer-{n}" for n in range(20_000)]
    share = sum(holdout_bucket("cart", c) < 10 for c in customers) / len(customers)
    assert 0.09 < share < 0.11
    same = sum(
        (holdout_bucket("cart", c) < 10) == (holdout_bucket("welcome", c) < 10) for c in customers
    )
    assert same < len(customers)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=8, unique=True))
def test_holdout_decides_the_same_way_on_every_run(customer_numbers: list[int]) -> None:
    held_rule = rule(key="cart", holdout_percent=30)
    rules, model = RuleSet.of([held_rule]), default_lifecycle()
    for number in customer_numbers:
        key = f"c{number}"
        outcomes = []
        for _ in range(2):
            state = CustomerState.new(key)
            state, effects = step(
                state,
                make_event("Product Added", T0, customer=key),
                rules=rules,
                lifecycle=model,
                now=T0,
            )
            [timer] = [e for e in effects if e.type == "set_timer" and e.kind == "step"]
            fired = TimerFired(timer_id=timer.timer_id, kind="step", due_at=timer.due_at)
            _, effects = step(state, fired, rules=rules, lifecycle=model, now=timer.due_at)
            kinds = sorted(e.type for e in effects if e.type in ("held_out", "emit_action"))
            outcomes.append(kinds)
        assert outcomes[0] == outcomes[1]
        expected = ["held_out"] if holdout_bucket("cart", key) < 30 else ["emit_action"]
        assert outcomes[0] == expected
