"""Condition paths are checked against the profile and event models, so a typo is a 422."""

from __future__ import annotations

import pytest

from services.trigger_engine.rules.paths import check_paths, path_problem


@pytest.mark.parametrize(
    "path",
    [
        "profile.traits.email",
        "profile.traits.anything.deep",
        "profile.stage",
        "profile.stage_entered_at",
        "profile.known",
        "profile.orders",
        "profile.cart.value",
        "profile.cart.products.0.price",
        "profile.nps.0.score",
        "profile.anonymous_ids.0",
        "event.properties.price",
        "event.context.timezone",
        "event.event",
        "event.timestamp",
        "other.root",  # the rule model refuses roots; not this check's to say
    ],
)
def test_paths_that_can_resolve_pass(path: str) -> None:
    assert path_problem(path) is None


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("profile.trait.email", "did you mean 'profile.traits'?"),
        ("profile.segments", "profile has no field 'segments'"),
        ("profile.order_log", "profile has no field 'order_log'"),
        ("profile.orders.count", "profile.orders is a number"),
        ("profile.cart.valu", "did you mean 'profile.cart.value'?"),
        ("profile.cart.products.price", "profile.cart.products is a list"),
        ("profile.nps.0.scor", "profile.nps.0 has no field 'scor'"),
        ("event.property.price", "did you mean 'event.properties'?"),
        ("event.event.name", "event.event is a string"),
    ],
)
def test_paths_that_never_resolve_say_why(path: str, says: str) -> None:
    problem = path_problem(path)
    assert problem is not None and says in problem
    if "has no field" in says:
        assert "(known: " in problem


def test_every_condition_of_a_rule_body_is_checked_even_an_invalid_body() -> None:
    body = {
        "trigger": {"where": [{"path": "event.propertie.x"}]},
        "audience": [{"path": "profile.trait.x"}, "not a condition", {"path": 3}],
        "exit_when": [{"where": [{"path": "event.properties.ok"}]}, None],
        "goal": {"where": [{"path": "profile.cart.nothing"}]},
    }
    assert [issue.loc for issue in check_paths(body)] == [
        ("trigger", "where", 0, "path"),
        ("audience", 0, "path"),
        ("goal", "where", 0, "path"),
    ]
    assert check_paths("not a rule") == []
