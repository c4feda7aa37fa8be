"""E-commerce Spec events: valid and invalid properties for each, custom events untouched."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.ingest.tracking import INVALID_EVENT_PROPERTIES, Rejection, parse_message
from services.ingest.tracking.ecommerce import ECOMMERCE_EVENTS, check_properties
from shared.envelope import EventV1

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

PRODUCT = {"product_id": "p1", "sku": "S-1", "price": 19.99, "quantity": 2, "name": "Mug"}

VALID: dict[str, dict[str, Any]] = {
    "Product Viewed": {**PRODUCT, "currency": "EUR", "value": 19.99, "brand": "Acme"},
    "Product List Viewed": {"list_id": "hot", "category": "Deals", "products": [PRODUCT, {}]},
    "Product Added": {**PRODUCT, "cart_id": "c1"},
    "Product Removed": {**PRODUCT, "cart_id": 77, "quantity": 0.5},
    "Cart Viewed": {"cart_id": "c1", "products": [PRODUCT]},
    "Checkout Started": {
        "order_id": None,
        "value": 40,
        "revenue": 38.5,
        "shipping": 3,
        "tax": 2.1,
        "discount": -1,
        "currency": "usd",
        "products": [PRODUCT],
    },
    "Order Completed": {
        "order_id": "o-1",
        "checkout_id": "ch-1",
        "total": 42.0,
        "subtotal": 38,
        "revenue": 40,
        "currency": "EUR",
        "coupon": "CART10",
        "products": [PRODUCT, {"product_id": 9, "price": 0}],
    },
    "Order Refunded": {"order_id": 1234, "total": 10, "currency": "GBP"},
    "Order Cancelled": {"order_id": "o-1", "total": 42, "products": []},
    "Coupon Applied": {"order_id": "o-1", "cart_id": "c1", "coupon_id": "CART10", "discount": 5},
    "Signed Up": {"email": "a@example.com", "method": "google", "type": "organic"},
    "Survey Responded": {"score": 9, "comment": "great"},
}

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("Product Viewed", {"price": "19.99"}, "properties.price must be a number, got '19.99'"),
    ("Product Viewed", {"currency": "euro"}, "properties.currency must be a 3-letter ISO 4217"),
    ("Product List Viewed", {"products": {"a": 1}}, "properties.products must be a list, got an"),
    ("Product List Viewed", {"products": [PRODUCT, "p2"]}, "properties.products[1] must be an"),
    ("Product Added", {"quantity": -1}, "properties.quantity must be at least 0, got -1"),
    ("Product Added", {"price": True}, "properties.price must be a number, got true"),
    ("Product Removed", {"product_id": ""}, "properties.product_id must be a non-empty string"),
    ("Cart Viewed", {"products": [{"price": None}, {"quantity": "2"}]}, "properties.products[1]"),
    ("Cart Viewed", {"cart_id": {"id": 1}}, "properties.cart_id must be a non-empty string or a"),
    ("Checkout Started", {"tax": "1.00"}, "properties.tax must be a number, got '1.00'"),
    ("Order Completed", {"total": 42}, "properties.order_id is required"),
    ("Order Completed", {"order_id": None}, "properties.order_id must be a non-empty string or"),
    ("Order Completed", {"order_id": "o", "total": -5}, "properties.total must be at least 0"),
    (
        "Order Completed",
        {"order_id": "o", "products": [{"price": 1, "quantity": "x"}]},
        "properties.products[0].quantity must be a number, got 'x'",
    ),
    ("Order Refunded", {"total": 10}, "properties.order_id is required"),
    ("Order Cancelled", {"order_id": False}, "properties.order_id must be a non-empty string or"),
    ("Coupon Applied", {"discount": "10%"}, "properties.discount must be a number, got '10%'"),
    ("Signed Up", {"email": ["a@b.c"]}, "properties.email must be a string, got a list"),
    ("Signed Up", {"phone": 4155550100}, "properties.phone must be a string, got 4155550100"),
    ("Survey Responded", {}, "properties.score is required"),
    ("Survey Responded", {"score": 11}, "properties.score must be an integer from 0 to 10, got 11"),
    ("Survey Responded", {"score": -1}, "properties.score must be an integer from 0 to 10, got -1"),
    ("Survey Responded", {"score": 7.5}, "properties.score must be an integer from 0 to 10, got"),
    ("Survey Responded", {"score": "9"}, "properties.score must be an integer from 0 to 10, got"),
    ("Survey Responded", {"score": True}, "properties.score must be an integer from 0 to 10, got"),
]


def track(event: str, properties: dict[str, Any]) -> EventV1 | Rejection:
    raw = {"userId": "u1", "messageId": "m1", "event": event, "properties": properties}
    return parse_message(raw, source="shop", received_at=NOW, call_type="track")


def test_every_spec_event_has_a_valid_and_an_invalid_case() -> None:
    assert set(VALID) == set(ECOMMERCE_EVENTS)
    assert {event for event, _, _ in INVALID} == set(ECOMMERCE_EVENTS)


@pytest.mark.parametrize("event", sorted(VALID))
def test_valid_properties_pass_through_unchanged(event: str) -> None:
    properties = VALID[event]
    result = track(event, properties)
    assert isinstance(result, EventV1), result
    assert result.event == event
    assert result.properties == properties
    assert decoded_equal(result)


@pytest.mark.parametrize(("event", "properties", "message"), INVALID)
def test_invalid_properties_are_rejected_with_the_field_named(
    event: str, properties: dict[str, Any], message: str
) -> None:
    result = track(event, properties)
    assert isinstance(result, Rejection), result
    assert result.code == INVALID_EVENT_PROPERTIES
    assert result.message.startswith(f"{event}: {message}")


def test_non_finite_amounts_are_refused_by_the_spec_and_before_it() -> None:
    properties = {"order_id": "o", "revenue": float("inf")}
    problem = check_properties("Order Completed", properties)
    assert problem is not None and problem.startswith("Order Completed: properties.revenue must")
    result = track("Order Completed", properties)  # the shape limits see it first
    assert isinstance(result, Rejection)
    assert result.message.startswith("properties.revenue must be a finite number")


def test_score_boundaries_are_inclusive() -> None:
    assert check_properties("Survey Responded", {"score": 0}) is None
    assert check_properties("Survey Responded", {"score": 10}) is None


def test_custom_events_are_not_checked() -> None:
    properties = {"price": "free", "order_id": None, "score": 99}
    result = track("Wishlist Shared", properties)
    assert isinstance(result, EventV1)
    assert result.properties == properties
    assert check_properties("order completed", {}) is None  # names match exactly


def test_spec_events_on_page_calls_are_not_checked() -> None:
    raw = {"userId": "u", "messageId": "m", "name": "Order Completed", "properties": {}}
    result = parse_message(raw, source="s", received_at=NOW, call_type="page")
    assert isinstance(result, EventV1)


def decoded_equal(event: EventV1) -> bool:
    from shared.envelope import decode_event

    return decode_event(event.to_bytes()) == event
