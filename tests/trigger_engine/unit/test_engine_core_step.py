"""Scenarios for ``step``: one rule play at a time, driven through the virtual-clock simulator."""

from datetime import timedelta

import msgspec
import pytest
from engine_core_support import T0, at, event, example, identify, of_type, rule, simulator

from services.trigger_engine.core.effects import EmitAction, RunExited
from services.trigger_engine.core.engine import step
from services.trigger_engine.core.inputs import TimerFired
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from services.trigger_engine.core.state import CustomerState, decode_state, encode_state

CART = example("cart-abandon", holdout_percent=0)
MUG = {"product_id": "p1", "name": "Mug", "price": 25}


def known_shopper(sim: Simulator, customer: str = "user-1") -> None:
    sim.feed(identify(at(), customer=customer, email=f"{customer}@example.com"))


def sends(sim: Simulator) -> list[EmitAction]:
    return of_type(sim.effects, "emit_action")


def test_cart_reminder_then_discount_when_no_order() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    sim.advance_to(at(days=5))
    reminder, discount = sends(sim)
    assert (reminder.template, reminder.step, reminder.created_at) == (
        "cart_reminder",
        1,
        at(minutes=61),
    )
    assert (discount.template, discount.step) == ("cart_discount", 3)
    assert discount.created_at == at(days=1, minutes=61)
    assert discount.context.offer is not None
    assert discount.context.offer.expires_at == at(days=3, minutes=61)
    assert reminder.context.cart["products"][0]["name"] == "Mug"
    assert reminder.context.trigger.event == "Product Added"
    assert reminder.action_id.startswith("act_") and reminder.action_id != discount.action_id
    assert [e.type for e in of_type(sim.effects, "run_completed")] == ["run_completed"]


def test_purchase_during_wait_cancels_cart_reminder() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    [timer] = of_type(sim.effects, "set_timer")[-1:]
    sim.feed(event("Order Completed", at(minutes=30), properties={"order_id": "o1"}))
    sim.advance_to(at(days=5))
    assert sends(sim) == []
    [exited] = of_type(sim.effects, "run_exited")
    assert (exited.reason, exited.step) == ("exit_when", 0)
    assert timer.timer_id in [c.timer_id for c in of_type(sim.effects, "cancel_timer")]


def test_late_order_whose_time_falls_in_the_wait_cancels_the_pending_send() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    late = event("Order Completed", at(minutes=50), properties={"order_id": "o1"})
    sim.apply("user-1", late, now=at(minutes=61))  # arrives after due, before the timer fired
    sim.advance_to(at(days=5))
    assert sends(sim) == []


def test_order_placed_before_the_cart_does_not_end_it() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(minutes=10), properties=MUG))
    older = event("Order Completed", at(minutes=5), properties={"order_id": "o1"})
    sim.apply("user-1", older, now=at(minutes=20))
    sim.advance_to(at(hours=2))
    assert [a.template for a in sends(sim)] == ["cart_reminder"]


def test_order_after_the_reminder_stops_the_discount() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    sim.advance_to(at(hours=3))
    sim.feed(event("Order Completed", at(hours=4), properties={"order_id": "o1"}))
    sim.advance_to(at(days=5))
    assert [a.template for a in sends(sim)] == ["cart_reminder"]
    [exited] = of_type(sim.effects, "run_exited")
    assert exited.step == 2


def test_triggers_older_than_max_event_age_start_nothing() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    stale = event("Product Added", at(minutes=1), properties=MUG)
    sim.apply("user-1", stale, now=at(days=1, minutes=2))
    assert of_type(sim.effects, "run_started") == []
    patient = simulator(example("cart-abandon", max_event_age="P3D"))
    known_shopper(patient)
    patient.apply("user-1", stale, now=at(days=2))
    assert len(of_type(patient.effects, "run_started")) == 1


def test_reentry_window_and_one_run_at_a_time() -> None:
    sim = simulator(CART)  # reentry P7D
    known_shopper(sim)
    for day in (0, 0.01, 3, 8):
        sim.feed(event("Product Added", at(days=day), properties=MUG))
        sim.advance_to(at(days=day + 2))
    started = [r.at for r in of_type(sim.effects, "run_started")]
    assert started == [at(days=0), at(days=8)]


def test_reentry_null_means_once_ever() -> None:
    sim = simulator(example("cart-abandon", reentry=None, holdout_percent=0))
    known_shopper(sim)
    for day in (0, 30, 300):
        sim.feed(event("Product Added", at(days=day), properties=MUG))
        sim.advance_to(at(days=day + 5))
    assert len(of_type(sim.effects, "run_started")) == 1


def test_audience_is_checked_at_entry_and_before_every_send() -> None:
    sim = simulator(CART)
    sim.feed(event("Product Added", at(), properties=MUG))  # no email yet: not in audience
    assert of_type(sim.effects, "run_started") == []
    only_prospects = rule(
        audience=[{"path": "profile.orders", "op": "eq", "value": 0}], reentry="PT0S"
    )
    sim = simulator(only_prospects)
    sim.feed(event("Product Added", at(), properties=MUG))
    sim.feed(event("Order Completed", at(minutes=10), properties={"order_id": "o1"}))
    sim.advance_to(at(hours=2))
    assert sends(sim) == []
    [exited] = of_type(sim.effects, "run_exited")
    assert (exited.reason, exited.step) == ("audience", 1)


def test_holdout_runs_the_rule_without_sending_and_still_converts() -> None:
    sim = simulator(example("cart-abandon", holdout_percent=100))
    known_shopper(sim)
    sim.feed(event("Product Added", at(), properties=MUG))
    sim.advance_to(at(days=2))
    sim.feed(event("Order Completed", at(days=3), properties={"order_id": "o1"}))
    assert sends(sim) == []
    held = of_type(sim.effects, "held_out")
    assert [h.step for h in held] == [1, 3]
    [converted] = of_type(sim.effects, "converted")
    assert converted.holdout is True and converted.at == at(days=3)


def test_goal_counts_only_within_the_window_and_not_the_trigger_itself() -> None:
    cross_sell = example("post-purchase-cross-sell", holdout_percent=0)
    sim = simulator(cross_sell)
    known_shopper(sim)
    sim.feed(event("Order Completed", at(), properties={"order_id": "o1"}))
    assert of_type(sim.effects, "converted") == []
    sim.advance_to(at(days=31))
    sim.feed(event("Order Completed", at(days=31), properties={"order_id": "o2"}))
    assert of_type(sim.effects, "converted") == []
    sim2 = simulator(cross_sell)
    known_shopper(sim2)
    sim2.feed(event("Order Completed", at(), properties={"order_id": "o1"}))
    sim2.feed(event("Order Completed", at(days=10), properties={"order_id": "o2"}))
    sim2.feed(event("Order Completed", at(days=11), properties={"order_id": "o3"}))
    assert len(of_type(sim2.effects, "converted")) == 1


def test_runs_in_flight_stay_on_their_rule_version() -> None:
    v1 = CART
    steps = v1.model_dump(mode="json")["steps"]
    steps[1]["send"]["template"] = "cart_reminder_v2"
    v2 = example("cart-abandon", holdout_percent=0, version=2, steps=steps)
    sim = simulator(v1)
    known_shopper(sim)
    sim.feed(event("Product Added", at(), properties=MUG))
    sim.rules = RuleSet.of([v2], history=[v1])
    sim.advance_to(at(days=5))
    assert {(a.template, a.rule_version) for a in sends(sim)} == {
        ("cart_reminder", 1),
        ("cart_discount", 1),
    }
    sim.feed(event("Product Added", at(days=8), properties=MUG))
    sim.advance_to(at(days=9))
    assert (sends(sim)[-1].template, sends(sim)[-1].rule_version) == ("cart_reminder_v2", 2)


def test_disabling_a_rule_stops_its_runs_at_the_next_step() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(), properties=MUG))
    sim.rules = RuleSet.of([example("cart-abandon", enabled=False)])
    sim.advance_to(at(days=5))
    assert sends(sim) == []
    assert [e.reason for e in of_type(sim.effects, "run_exited")] == ["rule_disabled"]
    gone = simulator(CART)
    known_shopper(gone)
    gone.feed(event("Product Added", at(), properties=MUG))
    gone.rules = RuleSet.of([example("cart-abandon", version=2)])
    gone.advance_to(at(days=5))
    assert [e.reason for e in of_type(gone.effects, "run_exited")] == ["rule_version_missing"]


def test_timers_fire_once_never_early_and_cancelled_ones_do_nothing() -> None:
    rules, lifecycle = RuleSet.of([rule()]), default_lifecycle()
    state = CustomerState.new("user-1")
    state, effects = step(
        state, event("Product Added", T0), rules=rules, lifecycle=lifecycle, now=T0
    )
    [timer] = of_type(effects, "set_timer")
    fired = TimerFired(timer_id=timer.timer_id, kind="step", run_id=timer.run_id, due_at=T0)
    early = step(state, fired, rules=rules, lifecycle=lifecycle, now=at(minutes=59))
    assert early.effects == [] and early.state is state
    state, effects = step(state, fired, rules=rules, lifecycle=lifecycle, now=at(minutes=60))
    assert len(of_type(effects, "emit_action")) == 1
    again = step(state, fired, rules=rules, lifecycle=lifecycle, now=at(minutes=61))
    assert again.effects == [] and again.state is state
    unknown = msgspec.structs.replace(fired, timer_id="cancelled-long-ago")
    assert step(state, unknown, rules=rules, lifecycle=lifecycle, now=at(days=1)).effects == []


def test_a_redelivered_event_changes_nothing() -> None:
    rules, lifecycle = RuleSet.of([rule()]), default_lifecycle()
    added = event("Product Added", T0, properties={"sku": "A"})
    state, first = step(
        CustomerState.new("user-1"), added, rules=rules, lifecycle=lifecycle, now=T0
    )
    assert first
    again = step(state, added, rules=rules, lifecycle=lifecycle, now=at(seconds=5))
    assert again.effects == [] and again.state.profile.cart.products[0].quantity == 1


def test_step_does_not_modify_its_input_state() -> None:
    rules, lifecycle = RuleSet.of([rule()]), default_lifecycle()
    state = CustomerState.new("user-1")
    before = encode_state(state)
    step(state, event("Product Added", T0), rules=rules, lifecycle=lifecycle, now=T0)
    assert encode_state(state) == before


def test_stage_rules_transitions_and_reactivation() -> None:
    short = default_lifecycle(at_risk_after=timedelta(days=90), lapsed_after=timedelta(days=180))
    sim = simulator(example("at-risk-reengage", holdout_percent=0), lifecycle=short)
    known_shopper(sim)
    sim.feed(event("Order Completed", at(), properties={"order_id": "o1"}))
    stage_timers = [t for t in of_type(sim.effects, "set_timer") if t.kind == "stage"]
    assert [t.due_at for t in stage_timers] == [at(days=90)]
    sim.advance_to(at(days=91))
    [free_delivery] = sends(sim)
    assert free_delivery.context.offer is not None
    assert free_delivery.context.offer.kind == "free_delivery"
    assert free_delivery.context.trigger.stage == "at_risk"
    assert free_delivery.customer.stage == "at_risk"
    sim.feed(event("Order Completed", at(days=92), properties={"order_id": "o2"}))
    sim.advance_to(at(days=120))
    assert len(sends(sim)) == 1  # the order ended the run before the discount
    transitions = [
        (t.from_stage, t.to_stage, t.cause, t.reactivated)
        for t in of_type(sim.effects, "stage_transition")
    ]
    assert transitions == [
        (None, "prospect", "event", False),
        ("prospect", "first_time", "event", False),
        ("first_time", "at_risk", "time", False),
        ("at_risk", "repeat", "event", True),
    ]


def test_stage_changes_missed_by_a_late_timer_are_replayed_in_order() -> None:
    sim = simulator(example("referral-ask"))
    known_shopper(sim)
    sim.feed(event("Order Completed", at(), properties={"order_id": "o1"}))
    sim.timers.clear()  # the timer service lost the stage timer
    sim.feed(event("Order Completed", at(days=200), properties={"order_id": "o2"}))
    transitions = [
        (t.to_stage, t.at, t.reactivated) for t in of_type(sim.effects, "stage_transition")
    ]
    assert transitions[-3:] == [
        ("at_risk", at(days=90), False),
        ("lapsed", at(days=180), False),
        ("repeat", at(days=200), True),
    ]


def test_stage_changed_trigger_filters_from_and_to() -> None:
    sim = simulator(example("referral-ask", holdout_percent=0))
    known_shopper(sim)
    for index in range(5):
        sim.feed(event("Order Completed", at(days=index), properties={"order_id": f"o{index}"}))
    sim.advance_to(at(days=10))
    [ask] = sends(sim)
    assert (ask.template, ask.created_at) == ("referral_ask", at(days=7))
    assert ask.context.trigger.type == "stage_changed"


def test_inactivity_rule_fires_after_the_quiet_period_and_restarts_on_each_event() -> None:
    sim = simulator(example("lapsed-winback", holdout_percent=0))
    known_shopper(sim)
    sim.feed(event("Order Completed", at(), properties={"order_id": "o1"}))
    sim.feed(event("Order Completed", at(days=100), properties={"order_id": "o2"}))
    older = event("Order Completed", at(days=50), properties={"order_id": "o0"})
    sim.apply("user-1", older, now=at(days=100, hours=1))
    sim.advance_to(at(days=279))
    assert sends(sim) == []
    sim.advance_to(at(days=300))
    first = sends(sim)[0]
    assert (first.template, first.created_at) == ("winback_we_miss_you", at(days=280))
    assert first.context.trigger.type == "inactivity"
    sim.advance_to(at(days=800))
    assert len(of_type(sim.effects, "run_started")) == 1  # the clock rests until the next order


def test_disabling_an_inactivity_rule_cancels_its_clocks() -> None:
    sim = simulator(example("lapsed-winback"))
    known_shopper(sim)
    sim.feed(event("Order Completed", at(), properties={"order_id": "o1"}))
    assert any(t.kind == "inactivity" for t in sim.timers.values())
    sim.rules = RuleSet.of([example("lapsed-winback", enabled=False)])
    sim.feed(event("Page", at(days=1)))
    assert not any(t.kind == "inactivity" for t in sim.timers.values())
    assert sim.states["user-1"].inactivity == {}


def test_state_round_trips_through_storage_and_the_json_of_earlier_versions() -> None:
    sim = simulator(CART, example("lapsed-winback"), example("welcome-series"))
    known_shopper(sim)
    sim.feed(event("Signed Up", at(minutes=1)))
    sim.feed(event("Product Added", at(minutes=2), properties=MUG))
    sim.feed(event("Order Completed", at(minutes=3), properties={"order_id": "o1", "total": 25}))
    sim.feed(event("Survey Responded", at(minutes=4), properties={"score": 10}))
    state = sim.states["user-1"]
    assert decode_state(encode_state(state)) == state
    # states stored before the MessagePack encoding were UTF-8 JSON; they still load
    assert decode_state(msgspec.json.encode(state)) == state


def test_action_becomes_the_contract_webhook_data() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(), properties=MUG))
    sim.advance_to(at(hours=2))
    action = sends(sim)[0].to_action()
    data = action.model_dump(mode="json")["data"]
    assert set(data) == {
        "action_id",
        "rule",
        "rule_version",
        "step",
        "channel",
        "template",
        "customer",
        "context",
    }
    assert data["customer"]["id"] == "user-1" and data["customer"]["email"] == "user-1@example.com"
    assert data["context"]["trigger"]["event"] == "Product Added"
    assert action.action_id == data["action_id"] and action.customer_key == "user-1"


def test_exit_records_carry_the_step_reached() -> None:
    sim = simulator(CART)
    known_shopper(sim)
    sim.feed(event("Product Added", at(), properties=MUG))
    sim.feed(event("Order Completed", at(minutes=1), properties={"order_id": "o1"}))
    exited = of_type(sim.effects, "run_exited")
    assert all(isinstance(e, RunExited) for e in exited) and exited[0].step == 0


def test_a_late_event_does_not_rewrite_stage_history() -> None:
    sim = simulator(lifecycle=default_lifecycle(at_risk_after=timedelta(days=90)))
    known_shopper(sim)
    sim.feed(event("Order Completed", at(), properties={"order_id": "o1"}))
    sim.advance_to(at(days=91))
    late = event("Order Completed", at(days=89), properties={"order_id": "o2"})
    sim.apply("user-1", late, now=at(days=91))
    last = of_type(sim.effects, "stage_transition")[-1]
    assert (last.from_stage, last.to_stage, last.at) == ("at_risk", "repeat", at(days=90))


def test_naive_clocks_are_refused() -> None:
    rules, lifecycle = RuleSet.of([]), default_lifecycle()
    with pytest.raises(ValueError, match="timezone-aware"):
        step(
            CustomerState.new("c"),
            event("Page", T0),
            rules=rules,
            lifecycle=lifecycle,
            now=T0.replace(tzinfo=None),
        )
