import re
from datetime import timedelta
from typing import Any

import pytest
from engine_core_support import T0, at, event, identify, of_type, simulator
from pydantic import ValidationError

from services.trigger_engine.core.lifecycle import (
    DEFAULT_STAGE_NAMES,
    LifecycleModel,
    default_lifecycle,
    next_stage,
    next_stage_change_at,
)
from services.trigger_engine.core.profile import OrderRecord, Profile, recompute_metrics

SHORT = default_lifecycle(lapsed_after=timedelta(seconds=20), at_risk_after=timedelta(seconds=10))


def profile(orders: int = 0, last_order: float = 0, **fields: Any) -> Profile:
    result = Profile(customer_key="c", **fields)
    for index in range(orders):
        result.order_log[f"o{index}"] = OrderRecord(total=10, at=at(seconds=last_order - index))
    recompute_metrics(result)
    return result


def test_default_model_has_the_contract_stages_in_order() -> None:
    assert tuple(default_lifecycle().stage_names()) == DEFAULT_STAGE_NAMES


@pytest.mark.parametrize(
    ("prof", "seconds_later", "stage"),
    [
        (profile(), 0, "visitor"),
        (profile(traits={"email": "a@b.c"}), 0, "prospect"),
        (profile(traits={"phone": "+15550100"}), 0, "prospect"),
        (profile(traits={"email": "  "}), 0, "visitor"),
        (profile(cart_adds=1, traits={"email": "a@b.c"}), 0, "engaged"),
        (profile(checkouts=1), 0, "engaged"),
        (profile(orders=1), 0, "first_time"),
        (profile(orders=2), 0, "repeat"),
        (profile(orders=4), 0, "repeat"),
        (profile(orders=5), 0, "loyal"),
        (profile(orders=5), 9, "loyal"),
        (profile(orders=5), 10, "at_risk"),
        (profile(orders=1), 19, "at_risk"),
        (profile(orders=1), 20, "lapsed"),
    ],
)
def test_first_matching_stage_wins(prof: Profile, seconds_later: float, stage: str) -> None:
    assert next_stage(SHORT, prof, now=at(seconds=seconds_later)) == stage


def test_next_change_is_the_next_boundary_that_moves_the_stage() -> None:
    buyer = profile(orders=2)
    assert next_stage_change_at(SHORT, buyer, now=T0) == at(seconds=10)
    assert next_stage_change_at(SHORT, buyer, now=at(seconds=10)) == at(seconds=20)
    assert next_stage_change_at(SHORT, buyer, now=at(seconds=25)) is None
    assert next_stage_change_at(SHORT, profile(), now=T0) is None


def test_a_boundary_that_changes_nothing_is_skipped() -> None:
    model = LifecycleModel.model_validate(
        {
            "stages": [
                {"name": "old", "when": [{"since": "first_seen_at", "at_least": "PT30S"}]},
                {"name": "quiet", "when": [{"since": "last_seen_at", "at_least": "PT5S"}]},
                {"name": "fresh"},
            ]
        }
    )
    seen = Profile(customer_key="c", first_seen_at=T0, last_seen_at=at(seconds=20))
    # last_seen + 5s flips "quiet" at 25s; first_seen + 30s flips "old" at 30s.
    assert next_stage_change_at(model, seen, now=at(seconds=20)) == at(seconds=25)
    assert next_stage_change_at(model, seen, now=at(seconds=25)) == at(seconds=30)


def test_every_default_stage_is_reachable_through_events_and_time() -> None:
    sim = simulator(lifecycle=SHORT)
    sim.feed(event("Product Viewed", at(), anonymous=True, customer="anon-1"))
    sim.feed(identify(at(seconds=1), customer="u"))
    sim.feed(identify(at(seconds=2), customer="u", email="u@example.com"))
    sim.feed(event("Product Added", at(seconds=3), customer="u", properties={"sku": "A"}))
    for index in range(5):
        props = {"order_id": f"o{index}", "total": 10}
        sim.feed(event("Order Completed", at(seconds=4 + index), customer="u", properties=props))
    sim.advance_to(at(seconds=60))
    reached = {t.to_stage for t in of_type(sim.effects, "stage_transition")}
    assert reached == set(DEFAULT_STAGE_NAMES)
    path = [t.to_stage for t in of_type(sim.effects, "stage_transition") if t.customer_key == "u"]
    expected = ["visitor", "prospect", "engaged", "first_time", "repeat", "loyal"]
    assert path == [*expected, "at_risk", "lapsed"]


@pytest.mark.parametrize(
    ("stages", "fragment"),
    [
        ([{"name": "a"}, {"name": "a"}], "duplicate stage names: a"),
        (
            [{"name": "a"}, {"name": "b", "when": [{"metric": "orders", "op": "gt", "value": 1}]}],
            "the last stage ('b') must have no criteria",
        ),
        ([{"name": "a", "when": [{"metric": "shoe_size", "op": "gt", "value": 1}]}], "metric"),
        ([{"name": "a", "when": [{"since": "last_order_at"}]}], "exactly one of"),
        ([{"name": "a", "when": [{"colour": "red"}]}], "either 'metric' or 'since'"),
        ([{"name": "a"}], "reactivation_from names unknown stages: lapsed"),
    ],
)
def test_invalid_models_are_refused(stages: list[dict[str, Any]], fragment: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        LifecycleModel.model_validate({"stages": stages, "reactivation_from": ["lapsed"]})


def test_model_round_trips_through_json() -> None:
    model = default_lifecycle()
    assert LifecycleModel.model_validate(model.model_dump(mode="json")) == model


def test_reactivation_stages_default_to_the_dormant_stages_present() -> None:
    assert default_lifecycle().reactivation_from == ["lapsed", "at_risk"]
    custom = LifecycleModel.model_validate({"stages": [{"name": "at_risk"}]})
    assert custom.reactivation_from == ["at_risk"]
