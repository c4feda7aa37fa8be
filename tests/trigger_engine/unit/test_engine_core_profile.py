from typing import Any

from engine_core_support import at, event, identify

from services.trigger_engine.core.profile import Profile, apply_event, merge
from shared.envelope import Event


def fold(*events: Event, key: str = "user-1") -> Profile:
    profile = Profile(customer_key=key)
    for item in events:
        profile = apply_event(profile, item)
    return profile


def order(order_id: str, minutes: float, **props: Any) -> Event:
    return event("Order Completed", at(minutes=minutes), properties={"order_id": order_id, **props})


def test_apply_event_leaves_its_input_untouched() -> None:
    before = Profile(customer_key="user-1")
    after = apply_event(before, event("Product Added", at(), properties={"sku": "A"}))
    assert before.cart.products == [] and before.cart_adds == 0
    assert after.cart_adds == 1


def test_identity_and_traits() -> None:
    profile = fold(
        event("Page", at(), anonymous_id="anon-9"),
        identify(at(minutes=1), email="a@example.com", timezone="Asia/Jerusalem"),
        identify(at(minutes=2), consent={"email": True}),
    )
    assert profile.user_id == "user-1"
    assert profile.anonymous_ids == ["anon-9"]
    assert profile.traits == {
        "email": "a@example.com",
        "timezone": "Asia/Jerusalem",
        "consent": {"email": True},
    }
    assert profile.known and profile.email == "a@example.com"
    assert profile.first_seen_at == at() and profile.last_seen_at == at(minutes=2)


def test_orders_revenue_and_aov() -> None:
    profile = fold(
        order("o1", 0, total=30), order("o2", 10, revenue=50.5), order("o1", 20, total=30)
    )
    assert profile.orders == 2
    assert profile.revenue == 80.5
    assert profile.aov == 40.25
    assert profile.first_order_at == at() and profile.last_order_at == at(minutes=10)


def test_order_amount_falls_back_to_products() -> None:
    products = [{"price": 10, "quantity": 2}, {"price": 5}]
    assert fold(order("o1", 0, products=products)).revenue == 25


def test_refunds_subtract_and_cancellations_remove_the_order() -> None:
    partial = fold(
        order("o1", 0, total=100),
        event("Order Refunded", at(minutes=1), properties={"order_id": "o1", "total": 30}),
    )
    assert (partial.orders, partial.revenue) == (1, 70)
    full = fold(
        order("o1", 0, total=100),
        event("Order Refunded", at(minutes=1), properties={"order_id": "o1"}),
    )
    assert (full.orders, full.revenue) == (1, 0)
    over = fold(
        order("o1", 0, total=100),
        event("Order Refunded", at(minutes=1), properties={"order_id": "o1", "total": 500}),
    )
    assert over.revenue == 0
    cancelled = fold(
        order("o1", 0, total=100),
        order("o2", 5, total=20),
        event("Order Cancelled", at(minutes=6), properties={"order_id": "o2"}),
    )
    assert (cancelled.orders, cancelled.revenue, cancelled.last_order_at) == (1, 100, at())


def test_refund_of_an_unseen_order_changes_nothing() -> None:
    profile = fold(
        order("o1", 0, total=100),
        event("Order Refunded", at(minutes=1), properties={"order_id": "elsewhere", "total": 9}),
    )
    assert profile.revenue == 100


def test_cart_adds_removes_and_is_cleared_by_an_order() -> None:
    mug = {"product_id": "p1", "sku": "MUG", "name": "Mug", "price": 12.5}
    profile = fold(
        event("Product Added", at(minutes=1), properties={**mug, "quantity": 2}),
        event("Product Added", at(minutes=2), properties={"product_id": "p2", "price": 3}),
        event("Product Added", at(minutes=3), properties=mug),
        event("Product Removed", at(minutes=4), properties={"product_id": "p2"}),
    )
    [line] = profile.cart.products
    assert (line.product_id, line.sku, line.name, line.price, line.quantity) == (
        "p1",
        "MUG",
        "Mug",
        12.5,
        3,
    )
    assert profile.cart.value == 37.5
    partly = apply_event(
        profile, event("Product Removed", at(minutes=5), properties={**mug, "quantity": 1})
    )
    assert partly.cart.products[0].quantity == 2
    after_order = apply_event(partly, order("o1", 6, total=25))
    assert after_order.cart.products == []
    assert after_order.cart_adds == 3


def test_an_order_only_clears_what_was_in_the_cart_before_it() -> None:
    profile = fold(
        event("Product Added", at(minutes=1), properties={"sku": "A"}),
        event("Product Added", at(minutes=10), properties={"sku": "B"}),
        order("o1", 5),
        event("Product Added", at(minutes=3), properties={"sku": "C"}),
    )
    assert [item.sku for item in profile.cart.products] == ["B"]


def test_checkouts_and_nps() -> None:
    profile = fold(
        event("Checkout Started", at()),
        event("Survey Responded", at(minutes=2), properties={"score": 9}),
        event("Survey Responded", at(minutes=1), properties={"score": "6"}),
        event("Survey Responded", at(minutes=3), properties={"score": 11}),
        event("Survey Responded", at(minutes=4), properties={"score": 7.5}),
    )
    assert profile.checkouts == 1
    assert [answer.score for answer in profile.nps] == [6, 9]


def test_merge_carries_cart_counts_orders_and_identity() -> None:
    anonymous = fold(
        event(
            "Product Added",
            at(minutes=1),
            customer="anon-1",
            anonymous=True,
            properties={"sku": "A", "price": 5},
        ),
        event("Checkout Started", at(minutes=2), customer="anon-1", anonymous=True),
        identify(at(minutes=2), customer="anon-1", email="anon@example.com", phone="+1"),
        key="anon-1",
    )
    known = fold(
        identify(at(), email="known@example.com"),
        event("Product Added", at(minutes=3), properties={"sku": "A", "price": 5}),
        event("Product Added", at(minutes=3), properties={"sku": "B", "price": 7}),
        order("o9", -60, total=40),
    )
    merged = merge(known, anonymous)
    assert merged.customer_key == "user-1" and merged.user_id == "user-1"
    assert "anon-1" in merged.anonymous_ids
    assert merged.traits["email"] == "known@example.com" and merged.traits["phone"] == "+1"
    assert {item.sku: item.quantity for item in merged.cart.products} == {"A": 2, "B": 1}
    assert (merged.cart_adds, merged.checkouts, merged.orders, merged.revenue) == (3, 1, 1, 40)
    assert merged.first_seen_at == at(minutes=-60)
    assert known.cart_adds == 2  # inputs untouched


def test_merge_drops_anonymous_cart_lines_an_order_already_closed() -> None:
    anonymous = fold(event("Product Added", at(minutes=1), properties={"sku": "A"}), key="anon-1")
    known = fold(order("o1", 2))
    assert merge(known, anonymous).cart.products == []
