"""The send policy inside ``step``: deferred sends resume their step (re-checking audience and
policy), capped and unconsented sends are skipped and the run goes on, the send log stays
in the state (pure, replay-safe) and follows merges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine_core_support import at, event, identify, of_type, rule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.trigger_engine.core import derive
from services.trigger_engine.core.engine import step
from services.trigger_engine.core.inputs import TimerFired
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.merging import merge_states
from services.trigger_engine.core.policy import SendPolicy
from services.trigger_engine.core.quiet_hours import customer_zone, is_quiet
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from services.trigger_engine.core.state import CustomerState

MODEL = default_lifecycle()
NIGHT = SendPolicy.model_validate(
    {"quiet_hours": {"start": "21:00", "end": "08:00"}, "default_timezone": "UTC"}
)
ONE_EMAIL_A_DAY = SendPolicy.model_validate({"caps": {"email": [{"max": 1, "per": "P1D"}]}})
# T0 (engine_core_support) is 2026-03-02 09:00 UTC: 04:00 in New York, quiet until 13:00 UTC.
NY_MORNING = datetime(2026, 3, 2, 13, tzinfo=UTC)
MUG = {"product_id": "mug", "price": 25}


def instant(key: str, channel: str = "email", **fields: Any) -> Any:
    return rule(
        key=key,
        steps=[{"send": {"channel": channel, "template": key}}],
        exit_when=[{"event": "Order Completed"}],
        **fields,
    )


def sim(*rules: Any, policy: SendPolicy) -> Simulator:
    return Simulator(rules=RuleSet.of(rules), lifecycle=MODEL, policy=policy)


def test_a_send_inside_quiet_hours_is_deferred_to_their_end_and_then_sent() -> None:
    s = sim(instant("cart"), policy=NIGHT)
    s.feed(identify(at(minutes=-1), timezone="America/New_York"), now=at(minutes=-1))
    produced = s.feed(event("Product Added", at(), properties=MUG), now=at())
    [deferred] = of_type(produced, "send_deferred")
    assert (deferred.until, deferred.channel, deferred.reason) == (
        NY_MORNING,
        "email",
        "quiet_hours",
    )
    assert of_type(produced, "emit_action") == []
    [timer] = of_type(produced, "set_timer")
    assert (timer.kind, timer.due_at) == ("step", NY_MORNING)
    [run] = s.states["user-1"].runs.values()
    assert (run.status, run.step_index, run.timer_id) == ("active", 0, timer.timer_id)

    produced = s.advance_to(NY_MORNING)
    [action] = of_type(produced, "emit_action")
    assert action.created_at == NY_MORNING
    assert action.action_id == derive.action_id(run.run_id, 0)  # the same id as undeferred
    assert of_type(produced, "run_completed")


def test_a_deferred_send_rechecks_the_audience_when_quiet_hours_end() -> None:
    vip_only = instant("vip", audience=[{"path": "profile.traits.vip", "op": "eq", "value": True}])
    s = sim(vip_only, policy=NIGHT)
    s.feed(identify(at(minutes=-1), timezone="America/New_York", vip=True), now=at(minutes=-1))
    s.feed(event("Product Added", at(), properties=MUG), now=at())
    s.feed(identify(at(hours=1), vip=False), now=at(hours=1))
    produced = s.advance_to(NY_MORNING)
    assert of_type(produced, "emit_action") == []
    [exited] = of_type(produced, "run_exited")
    assert (exited.reason, exited.step) == ("audience", 0)


def test_a_deferred_send_rechecks_consent_when_quiet_hours_end() -> None:
    s = sim(instant("cart"), policy=NIGHT)
    s.feed(identify(at(minutes=-1), timezone="America/New_York"), now=at(minutes=-1))
    s.feed(event("Product Added", at(), properties=MUG), now=at())
    s.feed(identify(at(hours=1), unsubscribed=True), now=at(hours=1))
    produced = s.advance_to(NY_MORNING)
    assert of_type(produced, "emit_action") == []
    [skipped] = of_type(produced, "send_skipped")
    assert skipped.reason == "opted_out"


def test_an_exit_event_during_the_deferral_cancels_the_send() -> None:
    s = sim(instant("cart"), policy=NIGHT)
    s.feed(identify(at(minutes=-1), timezone="America/New_York"), now=at(minutes=-1))
    s.feed(event("Product Added", at(), properties=MUG), now=at())
    produced = s.feed(
        event("Order Completed", at(hours=1), properties={"order_id": "o1"}), now=at(hours=1)
    )
    assert of_type(produced, "cancel_timer")
    assert all(t.kind != "step" for t in s.timers.values())
    assert of_type(s.advance_to(at(days=1)), "emit_action") == []


def test_a_late_trigger_is_checked_against_when_the_message_would_leave() -> None:
    # The event happened at 16:00 New York time but is processed at 23:00: defer to 08:00.
    happened = datetime(2026, 3, 2, 21, tzinfo=UTC)
    processed = datetime(2026, 3, 3, 4, tzinfo=UTC)
    s = sim(instant("cart"), policy=NIGHT)
    s.feed(identify(happened, timezone="America/New_York"), now=happened)
    produced = s.feed(event("Product Added", happened, properties=MUG), now=processed)
    [deferred] = of_type(produced, "send_deferred")
    assert deferred.until == datetime(2026, 3, 3, 13, tzinfo=UTC)


def test_a_capped_send_is_skipped_and_the_run_goes_on() -> None:
    first = instant("first")
    second = rule(
        key="second",
        steps=[
            {"send": {"channel": "email", "template": "capped"}},
            {"send": {"channel": "push", "template": "fine"}},
        ],
    )
    s = sim(first, second, policy=ONE_EMAIL_A_DAY)
    produced = s.feed(event("Product Added", at(), properties=MUG), now=at())
    assert [(a.rule, a.template) for a in of_type(produced, "emit_action")] == [
        ("first", "first"),
        ("second", "fine"),
    ]
    [skipped] = of_type(produced, "send_skipped")
    assert (skipped.rule, skipped.step, skipped.reason) == ("second", 0, "frequency_capped")
    assert len(of_type(produced, "run_completed")) == 2
    assert s.states["user-1"].sends == {"email": [at()]}


def test_sms_needs_an_opt_in_by_default() -> None:
    s = sim(instant("text", channel="sms"), policy=SendPolicy())
    produced = s.feed(event("Product Added", at(), properties=MUG), now=at())
    assert [e.reason for e in of_type(produced, "send_skipped")] == ["no_opt_in"]
    s = sim(instant("text", channel="sms"), policy=SendPolicy())
    s.feed(identify(at(minutes=-1), sms_opt_in=True), now=at(minutes=-1))
    assert of_type(s.feed(event("Product Added", at(), properties=MUG), now=at()), "emit_action")


def test_without_caps_no_send_log_is_kept() -> None:
    s = sim(instant("cart"), policy=SendPolicy())
    assert of_type(s.feed(event("Product Added", at(), properties=MUG), now=at()), "emit_action")
    assert s.states["user-1"].sends == {}


def test_the_default_policy_changes_nothing_for_existing_callers() -> None:
    rules = RuleSet.of([instant("cart")])
    _, effects = step(
        CustomerState.new("user-1"),
        event("Product Added", at()),
        rules=rules,
        lifecycle=MODEL,
        now=at(),
    )
    assert [e.type for e in effects if e.type == "emit_action"] == ["emit_action"]


def test_a_deferral_timer_fired_early_or_twice_does_nothing() -> None:
    rules = RuleSet.of([instant("cart")])
    state = CustomerState.new("user-1")
    state, _ = step(
        state,
        identify(at(minutes=-1), timezone="America/New_York"),
        rules=rules,
        lifecycle=MODEL,
        now=at(minutes=-1),
        policy=NIGHT,
    )
    state, effects = step(
        state, event("Product Added", at()), rules=rules, lifecycle=MODEL, now=at(), policy=NIGHT
    )
    [timer] = of_type(effects, "set_timer")
    fired = TimerFired(timer_id=timer.timer_id, kind="step", due_at=timer.due_at)
    early = step(state, fired, rules=rules, lifecycle=MODEL, now=at(hours=1), policy=NIGHT)
    assert early.effects == [] and early.state is state
    state, effects = step(state, fired, rules=rules, lifecycle=MODEL, now=NY_MORNING, policy=NIGHT)
    assert len(of_type(effects, "emit_action")) == 1
    again = step(state, fired, rules=rules, lifecycle=MODEL, now=NY_MORNING, policy=NIGHT)
    assert again.effects == []


def test_merged_customers_share_one_send_log() -> None:
    push_cap = SendPolicy.model_validate({"caps": {"push": [{"max": 1, "per": "P1D"}]}})
    rules = RuleSet.of([instant("nudge", channel="push", reentry="PT0S")])
    anonymous, effects = step(
        CustomerState.new("anon-1"),
        event("Product Added", at(), customer="anon-1", anonymous=True),
        rules=rules,
        lifecycle=MODEL,
        now=at(),
        policy=push_cap,
    )
    assert of_type(effects, "emit_action") and anonymous.sends == {"push": [at()]}
    known, effects = merge_states(
        CustomerState.new("user-1"), anonymous, rules=rules, lifecycle=MODEL, now=at(minutes=1)
    )
    assert known.sends == {"push": [at()]}
    _, effects = step(
        known,
        event("Product Added", at(minutes=2)),
        rules=rules,
        lifecycle=MODEL,
        now=at(minutes=2),
        policy=push_cap,
    )
    assert [e.reason for e in of_type(effects, "send_skipped")] == ["frequency_capped"]


# --- properties over the whole core -----------------------------------------------------------

STRICT = SendPolicy.model_validate(
    {
        "caps": {"email": [{"max": 2, "per": "PT12H"}, {"max": 3, "per": "P2D"}]},
        "quiet_hours": {"start": "22:00", "end": "07:30"},
    }
)
DRIP = rule(
    key="drip",
    steps=[
        {"send": {"channel": "email", "template": "a"}},
        {"wait": "PT3H"},
        {"send": {"channel": "email", "template": "b"}},
        {"wait": "PT5H"},
        {"send": {"channel": "email", "template": "c"}},
    ],
    reentry="PT0S",
)
ops = st.lists(
    st.tuples(st.sampled_from(["add", "add", "add", "unsub"]), st.integers(0, 600)),
    min_size=1,
    max_size=25,
)
zones = st.sampled_from(["America/New_York", "Europe/London", "Asia/Kolkata", "Bad/Zone"])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=ops, zone=zones)
def test_the_engine_never_sends_in_quiet_hours_over_the_cap_or_after_an_opt_out(
    ops: list[tuple[str, int]], zone: str
) -> None:
    s = sim(DRIP, policy=STRICT)
    now = datetime(2026, 3, 7, 12, tzinfo=UTC)  # spans the New York DST change
    s.feed(identify(now, timezone=zone), now=now)
    opted_out_at: int | None = None  # index into the effects when the opt-out was processed
    for kind, minutes in ops:
        now += timedelta(minutes=minutes)
        if kind == "add":
            s.feed(event("Product Added", now, properties=MUG), now=now)
        elif opted_out_at is None:
            s.feed(identify(now, unsubscribed=True), now=now)
            opted_out_at = len(s.effects)
    s.advance_to(now + timedelta(days=3))
    actions = of_type(s.effects, "emit_action")
    sent = [a.created_at for a in actions]
    assert STRICT.quiet_hours is not None
    tz = customer_zone(zone, STRICT.default_timezone)
    assert all(not is_quiet(STRICT.quiet_hours, tz, when) for when in sent)
    if opted_out_at is not None:
        assert of_type(s.effects[opted_out_at:], "emit_action") == []
    for cap in STRICT.caps_for("email"):
        for start in sent:
            assert sum(start <= t < start + cap.per for t in sent) <= cap.max
