from typing import Any

import pytest
from pydantic import ValidationError

from services.trigger_engine.core.conditions import MISSING, Condition, evaluate, resolve

DATA: dict[str, Any] = {
    "event": {
        "event": "Product Added",
        "properties": {"price": 25, "price_text": "19.99", "tags": ["sale", "new"], "name": "Mug"},
    },
    "profile": {
        "stage": "prospect",
        "orders": 0,
        "traits": {"email": "a@example.com", "phone": None, "vip": True},
        "cart": {"products": [{"sku": "S1"}]},
    },
}


def check(path: str, op: str, value: Any = None) -> bool:
    return evaluate(Condition.model_validate({"path": path, "op": op, "value": value}), DATA)


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        ("event.event", "eq", "Product Added", True),
        ("event.properties.price", "eq", 25.0, True),
        ("event.properties.price", "ne", 25, False),
        ("event.properties.price", "gt", 20, True),
        ("event.properties.price", "gte", 25, True),
        ("event.properties.price", "lt", 25, False),
        ("event.properties.price", "lte", 25, True),
        ("event.properties.price_text", "gte", 19.99, True),
        ("event.properties.price_text", "lt", 20, True),
        ("event.properties.name", "gt", "Apple", True),
        ("event.properties.name", "gt", 3, False),
        ("profile.stage", "in", ["visitor", "prospect"], True),
        ("profile.stage", "not_in", ["visitor", "prospect"], False),
        ("profile.traits.email", "exists", None, True),
        ("profile.traits.phone", "exists", None, False),
        ("profile.traits.phone", "exists", False, True),
        ("profile.traits.missing", "exists", True, False),
        ("event.properties.tags", "contains", "sale", True),
        ("event.properties.name", "contains", "ug", True),
        ("profile.cart.products.0.sku", "eq", "S1", True),
        ("profile.traits.vip", "eq", True, True),
        ("profile.traits.vip", "eq", 1, False),
        ("profile.orders", "eq", False, False),
    ],
)
def test_ops(path: str, op: str, value: Any, expected: bool) -> None:
    assert check(path, op, value) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("eq", 1, False),
        ("ne", 1, True),
        ("gt", 1, False),
        ("in", [1], False),
        ("not_in", [1], True),
        ("contains", "x", False),
    ],
)
def test_a_missing_path_only_satisfies_negative_ops(op: str, value: Any, expected: bool) -> None:
    assert check("event.properties.nope.deeper", op, value) is expected


def test_resolve_stops_at_non_containers() -> None:
    assert resolve("event.properties.price.cents", DATA) is MISSING
    assert resolve("profile.cart.products.5", DATA) is MISSING


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (
            {"path": "customer.email", "op": "eq", "value": 1},
            "must start with 'event.' or 'profile.'",
        ),
        ({"path": "event..price", "op": "eq", "value": 1}, "empty segment"),
        ({"path": "profile", "op": "eq", "value": 1}, "empty segment"),
        (
            {"path": "event.x", "op": "equals", "value": 1},
            "unknown op 'equals'; expected one of eq",
        ),
        ({"path": "event.x", "op": "in", "value": "a"}, "op 'in' needs a list value"),
        ({"path": "event.x", "op": "gt", "value": [1]}, "op 'gt' needs a number or a string"),
        ({"path": "event.x", "op": "exists", "value": 3}, "op 'exists' takes true, false"),
    ],
)
def test_invalid_conditions_say_why(raw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        Condition.model_validate(raw)
