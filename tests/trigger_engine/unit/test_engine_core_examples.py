"""Each example rule, run through the engine on the shopper story it is written for."""

from collections.abc import Callable

import pytest
from engine_core_support import at, event, example, identify, of_type, simulator

from services.trigger_engine.core.simulate import Simulator


def orders(sim: Simulator, *days: float) -> None:
    for index, day in enumerate(days):
        props = {"order_id": f"o{index}", "total": 30}
        sim.feed(event("Order Completed", at(days=day), properties=props))


STORIES: dict[str, tuple[Callable[[Simulator], None], list[str]]] = {
    "welcome-series": (
        lambda sim: sim.feed(event("Signed Up", at(minutes=1))),
        ["welcome", "welcome_bestsellers", "welcome_first_order_offer"],
    ),
    "browse-abandon": (
        lambda sim: sim.feed(event("Product Viewed", at(minutes=1), properties={"sku": "A"})),
        ["browse_reminder"],
    ),
    "cart-abandon": (
        lambda sim: sim.feed(event("Product Added", at(minutes=1), properties={"sku": "A"})),
        ["cart_reminder", "cart_discount"],
    ),
    "post-purchase-cross-sell": (
        lambda sim: orders(sim, 0),
        ["post_purchase_how_to", "post_purchase_cross_sell"],
    ),
    "repeat-purchase-nudge": (lambda sim: orders(sim, 0), ["repeat_bonus"]),
    "at-risk-reengage": (
        lambda sim: orders(sim, 0),
        ["reengage_free_delivery", "reengage_discount"],
    ),
    "loyalty-milestone": (lambda sim: orders(sim, 0, 1, 2, 3, 4, 5, 6), ["loyalty_fifth_order"]),
    "lapsed-winback": (lambda sim: orders(sim, 0), ["winback_we_miss_you", "winback_offer"]),
    "referral-ask": (lambda sim: orders(sim, 0, 1, 2, 3, 4), ["referral_ask"]),
}


@pytest.mark.parametrize("key", sorted(STORIES))
def test_example_rule_sends_its_messages_in_order(key: str) -> None:
    story, templates = STORIES[key]
    sim = simulator(example(key, holdout_percent=0))
    sim.feed(identify(at(), email="shopper@example.com"))
    story(sim)
    sim.advance_to(at(days=400))
    sent = of_type(sim.effects, "emit_action")
    assert [action.template for action in sent] == templates
    assert all(action.rule == key and action.customer.email for action in sent)


def test_an_order_stops_the_welcome_series() -> None:
    sim = simulator(example("welcome-series", holdout_percent=0))
    sim.feed(identify(at(), email="shopper@example.com"))
    sim.feed(event("Signed Up", at(minutes=1)))
    sim.feed(event("Order Completed", at(days=1), properties={"order_id": "o1"}))
    sim.advance_to(at(days=30))
    assert [a.template for a in of_type(sim.effects, "emit_action")] == ["welcome"]
