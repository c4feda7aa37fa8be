import copy
import json
from datetime import timedelta
from typing import Any

import pytest
from engine_core_support import EXAMPLES

from services.trigger_engine.core.rule_checks import RuleError, parse_rule
from services.trigger_engine.core.rules import InactivityTrigger, Rule, SendStep

CONTRACT_RULE: dict[str, Any] = {
    "key": "cart-abandon",
    "name": "Cart abandonment reminder",
    "enabled": True,
    "trigger": {
        "type": "event",
        "event": "Product Added",
        "where": [{"path": "event.properties.price", "op": "gte", "value": 20}],
    },
    "audience": [{"path": "profile.stage", "op": "in", "value": ["visitor", "prospect"]}],
    "steps": [
        {"wait": "PT1H"},
        {"send": {"channel": "email", "template": "cart_reminder"}},
        {"wait": "P1D"},
        {
            "send": {
                "channel": "email",
                "template": "cart_discount",
                "offer": {"code": "CART10", "expires_in": "P2D"},
            }
        },
    ],
    "exit_when": [{"event": "Order Completed"}],
    "reentry": "P7D",
    "holdout_percent": 10,
    "goal": {"event": "Order Completed", "within": "P7D"},
}


def issues_of(data: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(RuleError) as caught:
        parse_rule(data)
    return [(issue.loc, issue.message) for issue in caught.value.issues]


def changed(**fields: Any) -> dict[str, Any]:
    data = copy.deepcopy(CONTRACT_RULE)
    data.update(fields)
    return data


def test_the_contract_example_validates_and_round_trips() -> None:
    rule = parse_rule(CONTRACT_RULE)
    assert rule.steps[0].wait == timedelta(hours=1)  # type: ignore[union-attr]
    dumped = rule.model_dump(mode="json")
    assert dumped["steps"][3]["send"]["offer"]["expires_in"] == "P2D"
    assert Rule.model_validate(dumped) == rule


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_every_example_rule_validates(path: Any) -> None:
    rule = parse_rule(json.loads(path.read_text()))
    assert rule.key == path.stem
    assert any(isinstance(step, SendStep) for step in rule.steps)


def test_examples_cover_every_play() -> None:
    keys = {path.stem for path in EXAMPLES.glob("*.json")}
    assert keys >= {
        "welcome-series",
        "browse-abandon",
        "cart-abandon",
        "post-purchase-cross-sell",
        "repeat-purchase-nudge",
        "at-risk-reengage",
        "loyalty-milestone",
        "lapsed-winback",
        "referral-ask",
    }


def test_inactivity_trigger_reads_the_for_keyword() -> None:
    rule = parse_rule(
        changed(trigger={"type": "inactivity", "event": "Order Completed", "for": "P90D"})
    )
    assert isinstance(rule.trigger, InactivityTrigger)
    assert rule.trigger.for_ == timedelta(days=90)
    assert rule.model_dump(mode="json")["trigger"]["for"] == "P90D"


def test_unknown_op_is_located() -> None:
    data = changed(audience=[{"path": "profile.stage", "op": "equals", "value": "visitor"}])
    assert issues_of(data) == [
        (
            ("audience", 0, "op"),
            "unknown op 'equals'; expected one of eq, ne, gt, gte, lt, lte, in, not_in, "
            "exists, contains",
        )
    ]


def test_bad_duration_is_located_inside_the_offer() -> None:
    data = changed()
    data["steps"][3]["send"]["offer"]["expires_in"] = "P1M"
    [(loc, message)] = issues_of(data)
    assert loc == ("steps", 3, "send", "offer", "expires_in")
    assert "years and months have no fixed length" in message


def test_bad_wait_duration() -> None:
    data = changed()
    data["steps"][0] = {"wait": "1 hour"}
    assert issues_of(data) == [
        (("steps", 0, "wait"), "'1 hour' must start with 'P' (e.g. PT30S, PT1H, P7D, P1DT2H)")
    ]


def test_step_that_is_neither_wait_nor_send() -> None:
    data = changed()
    data["steps"][1] = {"sned": {"channel": "email", "template": "x"}}
    assert issues_of(data) == [
        (("steps", 1), 'a step is either {"wait": "<duration>"} or {"send": {...}}')
    ]


def test_unknown_stage_in_trigger() -> None:
    data = changed(trigger={"type": "stage_entered", "stage": "vip"}, audience=[])
    [(loc, message)] = issues_of(data)
    assert loc == ("trigger", "stage")
    assert message.startswith("unknown stage 'vip' (known: lapsed, at_risk, loyal")


def test_unknown_stage_in_stage_changed_lists_and_audience() -> None:
    data = changed(
        trigger={"type": "stage_changed", "from": ["repeat", "lapsd"], "to": ["loyal"]},
        audience=[{"path": "profile.stage", "op": "in", "value": ["loyal", "gold"]}],
    )
    locs = [loc for loc, _ in issues_of(data)]
    assert locs == [("trigger", "from", 1), ("audience", 0, "value")]


def test_custom_stage_names_are_accepted_when_given() -> None:
    data = changed(trigger={"type": "stage_entered", "stage": "vip"}, audience=[])
    assert parse_rule(data, stages=["vip", "everyone"]).trigger.type == "stage_entered"


def test_wrong_trigger_fields() -> None:
    data = changed(trigger={"type": "event", "event": "Product Added", "stage": "loyal"})
    assert issues_of(data) == [
        (
            ("trigger", "stage"),
            "field 'stage' does not belong to trigger type 'event' (allowed: type, event, where)",
        )
    ]


def test_missing_trigger_field() -> None:
    data = changed(trigger={"type": "inactivity", "event": "Order Completed"})
    assert issues_of(data) == [(("trigger", "for"), "Field required")]


def test_unknown_trigger_type() -> None:
    [(loc, message)] = issues_of(changed(trigger={"type": "cron", "every": "P1D"}))
    assert loc == ("trigger",)
    assert "expected one of event, stage_entered, stage_changed, inactivity" in message


@pytest.mark.parametrize("kind", [[None, None], {}, 1, None])
def test_trigger_type_that_is_not_a_string_is_unknown(kind: Any) -> None:
    # a list or an object used to escape as TypeError (unhashable): a 500 from the API
    [(loc, message)] = issues_of(changed(trigger={"type": kind, "event": "Product Added"}))
    assert loc == ("trigger",)
    assert "expected one of event, stage_entered, stage_changed, inactivity" in message


def test_rule_without_send_is_unreachable() -> None:
    assert issues_of(changed(steps=[{"wait": "PT1H"}])) == [
        (("steps",), "the rule has no send step, so it never sends")
    ]


def test_steps_after_a_wait_that_never_ends() -> None:
    data = changed()
    data["steps"][2] = {"wait": "P400D"}
    [(loc, message)] = issues_of(data)
    assert loc == ("steps", 2, "wait")
    assert "the steps after it (from steps[3]) can never run" in message


def test_trailing_wait_is_reported() -> None:
    data = changed()
    data["steps"].append({"wait": "P1D"})
    assert issues_of(data) == [
        (("steps", 4), "a wait after the last send leads to nothing; remove it")
    ]


def test_audience_that_excludes_the_entered_stage_can_never_start() -> None:
    data = changed(
        trigger={"type": "stage_entered", "stage": "at_risk"},
        audience=[{"path": "profile.stage", "op": "eq", "value": "loyal"}],
    )
    assert issues_of(data) == [
        (
            ("audience", 0),
            "excludes stage 'at_risk', the stage the trigger enters: the rule can never start",
        )
    ]


def test_audience_must_look_at_the_profile() -> None:
    data = changed(audience=[{"path": "event.properties.price", "op": "gt", "value": 1}])
    [(loc, message)] = issues_of(data)
    assert loc == ("audience", 0, "path")
    assert "use 'profile.*'" in message


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"holdout_percent": 120}, ("holdout_percent",)),
        ({"key": "Cart Abandon"}, ("key",)),
        ({"steps": []}, ("steps",)),
        ({"surprise": 1}, ("surprise",)),
        ({"goal": {"event": "Order Completed", "within": "PT0S"}}, ("goal", "within")),
    ],
)
def test_other_field_errors_are_located(fields: dict[str, Any], loc: tuple[Any, ...]) -> None:
    assert [found for found, _ in issues_of(changed(**fields))] == [loc]


def test_all_structural_problems_are_reported_at_once() -> None:
    data = changed(audience=[{"path": "profile.x", "op": "like", "value": 1}])
    data["steps"][0] = {"wait": "PTX"}
    locs = [loc for loc, _ in issues_of(data)]
    assert locs == [("audience", 0, "op"), ("steps", 0, "wait")]


def test_reentry_null_means_once_ever() -> None:
    assert parse_rule(changed(reentry=None)).reentry is None
    assert parse_rule(changed(reentry="P7D")).reentry == timedelta(days=7)
