"""Folding many inputs without a copy per input gives exactly what ``step`` gives one by one.

Scripts of storefront events (with redeliveries) and timer firings run through every example
play; ``step`` input by input is the reference for ``step_many`` (one copy per sequence) and
``advance`` (no copy, on a state the caller owns), as the live engine uses them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from engine_core_support import EXAMPLES, T0, example
from engine_core_support import event as make_event
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.trigger_engine.core.effects import CancelTimer, Effect, SetTimer
from services.trigger_engine.core.engine import step
from services.trigger_engine.core.fold import advance, step_many
from services.trigger_engine.core.inputs import TimerFired
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState, encode_state
from shared.envelope import Event

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RULES = RuleSet.of([example(path.stem) for path in sorted(EXAMPLES.glob("*.json"))])
SHORT = default_lifecycle(
    at_risk_after=timedelta(hours=3), lapsed_after=timedelta(hours=6), loyal_orders=3
)
KINDS = ("view", "view", "add", "remove", "order", "refund", "signup", "identify", "survey")

# An op is (kind, minutes the clock moves first, minutes the event time lags the clock);
# "again" redelivers the previous event, "fire" fires the earliest due timer.
ops = st.lists(
    st.tuples(
        st.sampled_from([*KINDS, "again", "fire", "fire"]),
        st.sampled_from([0, 0, 0, 1, 30, 90, 240, 60 * 24 * 4]),
        st.integers(min_value=0, max_value=90),
    ),
    min_size=1,
    max_size=40,
)

Input = Event | TimerFired


@dataclass
class Recorder:
    """Steps a script with ``step`` like the I/O layer would, recording (input, now) pairs."""

    state: CustomerState = field(default_factory=lambda: CustomerState.new("user-1"))
    timers: dict[str, SetTimer] = field(default_factory=dict)
    log: list[tuple[Input, datetime, list[Effect]]] = field(default_factory=list)
    now: datetime = T0

    def apply(self, item: Input) -> None:
        self.state, effects = step(self.state, item, rules=RULES, lifecycle=SHORT, now=self.now)
        for effect in effects:
            if isinstance(effect, SetTimer):
                self.timers[effect.timer_id] = effect
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.timer_id, None)
        self.log.append((item, self.now, effects))

    def play(self, script: list[tuple[str, int, int]]) -> None:
        last: Event | None = None
        for index, (kind, advance_by, lag) in enumerate(script):
            self.now += timedelta(minutes=advance_by)
            if kind == "fire":
                due = [t for t in self.timers.values() if t.due_at <= self.now]
                if due:
                    timer = min(due, key=lambda t: (t.due_at, t.timer_id))
                    del self.timers[timer.timer_id]
                    self.apply(
                        TimerFired(timer_id=timer.timer_id, kind=timer.kind, due_at=timer.due_at)
                    )
                continue
            if kind == "again":
                if last is not None:
                    self.apply(last)
                continue
            last = make(kind, index, self.now - timedelta(minutes=lag))
            self.apply(last)


def make(kind: str, index: int, when: datetime) -> Event:
    mid = f"op{index}"
    props: dict[str, Any] = {"product_id": f"p{index % 3}", "price": 10 + index % 4}
    if kind == "view":
        return make_event("Product Viewed", when, properties=props, message_id=mid)
    if kind == "add":
        return make_event("Product Added", when, properties=props, message_id=mid)
    if kind == "remove":
        return make_event("Product Removed", when, properties=props, message_id=mid)
    if kind == "order":
        props = {"order_id": f"o{index}", "total": 20 + index}
        return make_event("Order Completed", when, properties=props, message_id=mid)
    if kind == "refund":
        props = {"order_id": f"o{index - 1}"}
        return make_event("Order Refunded", when, properties=props, message_id=mid)
    if kind == "signup":
        traits = {"email": "u@example.com"}
        return make_event("Signed Up", when, traits=traits, message_id=mid)
    if kind == "survey":
        return make_event("Survey Responded", when, properties={"score": index % 11})
    email = None if index % 3 == 0 else f"u{index}@example.com"
    return make_event(None, when, call="identify", traits={"email": email}, message_id=mid)


def segments(log: list[tuple[Input, datetime, list[Effect]]]) -> list[tuple[datetime, list[Input]]]:
    """Consecutive inputs with the same ``now``: what one ``step_many`` call can take."""
    out: list[tuple[datetime, list[Input]]] = []
    for item, now, _ in log:
        if out and out[-1][0] == now:
            out[-1][1].append(item)
        else:
            out.append((now, [item]))
    return out


@PROPERTY
@given(ops)
def test_step_many_equals_stepping_input_by_input(script: list[tuple[str, int, int]]) -> None:
    reference = Recorder()
    reference.play(script)

    state = CustomerState.new("user-1")
    effects: list[Effect] = []
    for now, inputs in segments(reference.log):
        before = encode_state(state)
        result = step_many(state, inputs, rules=RULES, lifecycle=SHORT, now=now)
        assert encode_state(state) == before  # the input state is left untouched
        state = result.state
        effects += result.effects

    assert state == reference.state
    assert effects == [effect for _, _, produced in reference.log for effect in produced]
    for kind in sorted({effect.type for effect in effects}):
        event(f"produced {kind}")


@PROPERTY
@given(ops)
def test_advance_on_an_owned_state_equals_step(script: list[tuple[str, int, int]]) -> None:
    reference = Recorder()
    reference.play(script)

    owned = CustomerState.new("user-1")
    for item, now, expected in reference.log:
        produced = advance(owned, item, rules=RULES, lifecycle=SHORT, now=now)
        assert (produced or []) == expected
    assert owned == reference.state


def test_a_no_op_is_none_and_a_sequence_of_no_ops_returns_the_state_itself() -> None:
    state = CustomerState.new("user-1")
    viewed = make("view", 1, T0)
    result = step_many(state, [viewed, viewed], rules=RULES, lifecycle=SHORT, now=T0)
    assert result.state.recent_event_ids == [str(viewed.event_id)]
    again = step_many(result.state, [viewed], rules=RULES, lifecycle=SHORT, now=T0)
    assert again.state is result.state
    assert again.effects == []
    assert advance(result.state, viewed, rules=RULES, lifecycle=SHORT, now=T0) is None
