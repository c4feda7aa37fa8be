"""The sends a run did not make (held out, skipped, deferred), taken from a step's effects and
added to the Prometheus counters; and their run records (the timeline's ``run`` items)."""

from __future__ import annotations

from datetime import timedelta

import msgspec
from engine_core_support import at, event, identify, rule
from prometheus_client import REGISTRY

from services.trigger_engine.core.effects import SendDeferred
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.policy import SendPolicy
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from services.trigger_engine.runs import outcomes
from services.trigger_engine.runs.outcomes import SendOutcome, send_outcomes
from services.trigger_engine.runs.repository import run_rows

POLICY = SendPolicy.model_validate(
    {"quiet_hours": {"start": "21:00", "end": "08:00", "channels": ["push"]}}
)


def test_held_out_skipped_and_deferred_sends_are_found_among_the_effects() -> None:
    steps = [
        {"send": {"channel": "email", "template": "a"}},  # opted out: skipped
        {"send": {"channel": "sms", "template": "b"}},  # no opt-in: skipped
        {"send": {"channel": "push", "template": "c"}},  # 04:00 in New York: deferred
    ]
    treated = rule(key="treated", steps=steps)
    held = rule(key="held", steps=steps, holdout_percent=100)
    sim = Simulator(rules=RuleSet.of([treated, held]), lifecycle=default_lifecycle(), policy=POLICY)
    sim.feed(identify(at(minutes=-1), timezone="America/New_York", email_opt_in=False))
    produced = sim.feed(event("Product Added", at(), properties={"price": 5}))

    found = send_outcomes(produced)
    assert sorted(found, key=lambda o: (o.rule, o.kind, o.channel or "")) == [
        SendOutcome("held_out", "held"),
        SendOutcome("held_out", "held"),
        SendOutcome("held_out", "held"),
        SendOutcome("deferred", "treated", "push", "quiet_hours"),
        SendOutcome("skipped", "treated", "email", "opted_out"),
        SendOutcome("skipped", "treated", "sms", "no_opt_in"),
    ]


def test_counting_adds_to_the_labelled_counters() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    skipped = {"rule": "unit-outcomes", "channel": "email", "reason": "opted_out"}
    deferred = {"rule": "unit-outcomes", "channel": "push"}
    before = (
        value("clm_engine_sends_skipped_total", **skipped),
        value("clm_engine_sends_deferred_total", **deferred),
        value("clm_engine_sends_held_out_total", rule="unit-outcomes"),
    )
    outcomes.count(
        [
            SendOutcome("skipped", "unit-outcomes", "email", "opted_out"),
            SendOutcome("skipped", "unit-outcomes", "email", "opted_out"),
            SendOutcome("deferred", "unit-outcomes", "push", "quiet_hours"),
            SendOutcome("held_out", "unit-outcomes"),
        ]
    )
    after = (
        value("clm_engine_sends_skipped_total", **skipped),
        value("clm_engine_sends_deferred_total", **deferred),
        value("clm_engine_sends_held_out_total", rule="unit-outcomes"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [2, 1, 1]


def test_each_deferral_of_a_step_is_its_own_run_record_and_a_replay_is_the_same() -> None:
    first = SendDeferred(
        customer_key="user-1",
        run_id="run-1",
        rule="r",
        rule_version=1,
        holdout=False,
        at=at(),
        step=2,
        action_id="act-1",
        channel="push",
        until=at(hours=4),
    )
    # resumed at the end of the spell, deferred again (the quiet hours were moved meanwhile)
    again = msgspec.structs.replace(first, at=at(hours=4), until=at(hours=4) + timedelta(days=1))
    rows = run_rows([first, again])
    assert [(r.kind, r.step, r.detail) for r in rows] == [
        ("deferred", 2, at(hours=4).isoformat()),
        ("deferred", 2, (at(hours=4) + timedelta(days=1)).isoformat()),
    ]
    assert rows[0].id != rows[1].id
    assert [r.id for r in run_rows([first, again])] == [r.id for r in rows]  # replay: no-op
