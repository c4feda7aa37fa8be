"""Typed properties of the Segment E-commerce Spec events that clm acts on.

Validation is strict only where it matters downstream (lifecycle stages, AOV/CLV, carts,
NPS): money and quantities are finite JSON numbers (``"12.50"`` is refused, not coerced),
``price``/``quantity``/``total``/``revenue``/``subtotal``/``value`` are not negative,
``currency`` is a 3-letter ISO 4217 code, ids are non-empty strings or numbers,
``products`` is a list of objects, ``Order Completed``/``Order Refunded``/``Order Cancelled``
need ``order_id`` and ``Survey Responded`` needs an integer ``score`` from 0 to 10.

The models only check: the properties travel on unchanged, extra ones included, so what a
storefront sends is what rules see. Event names match exactly (``"order completed"`` is a
custom event); any other name is a custom event and is not checked.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from services.ingest.tracking.errors import describe, field_error, show


def _id(value: object) -> str | int | float | None:
    if value is None:
        return None
    if isinstance(value, str):
        if value and not value.isspace():
            return value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise field_error("must be a non-empty string or a number, got {got}", got=show(value))


def _required_id(value: object) -> str | int | float:
    if value is None:
        raise field_error("must be a non-empty string or a number, got null")
    checked = _id(value)
    assert checked is not None
    return checked


def _currency(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha():
        return value
    raise field_error("must be a 3-letter ISO 4217 currency code, got {got}", got=show(value))


def _score(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10:
        return value
    raise field_error("must be an integer from 0 to 10, got {got}", got=show(value))


Id = Annotated[
    str | int | float | None, PlainValidator(_id, json_schema_input_type=str | int | None)
]
RequiredId = Annotated[
    str | int | float, PlainValidator(_required_id, json_schema_input_type=str | int)
]
Currency = Annotated[str | None, PlainValidator(_currency, json_schema_input_type=str | None)]
#: A finite JSON number, not negative (prices, quantities, totals).
Amount = Annotated[float | None, Field(ge=0)]
#: A finite JSON number of either sign (tax, shipping, discount).
Number = float | None
Score = Annotated[int, PlainValidator(_score, json_schema_input_type=int)]


class _Properties(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, allow_inf_nan=False, frozen=True)


class Product(_Properties):
    """A member of ``products``."""

    product_id: Id = None
    sku: Id = None
    price: Amount = None
    quantity: Amount = None


class ProductProperties(_Properties):
    """``Product Viewed``, ``Product Added``, ``Product Removed``."""

    cart_id: Id = None
    product_id: Id = None
    sku: Id = None
    price: Amount = None
    quantity: Amount = None
    currency: Currency = None
    value: Amount = None


class ProductListProperties(_Properties):
    """``Product List Viewed``."""

    list_id: Id = None
    products: list[Product] | None = None


class CartProperties(_Properties):
    """``Cart Viewed``."""

    cart_id: Id = None
    products: list[Product] | None = None


class CheckoutProperties(_Properties):
    """``Checkout Started`` (no order yet, so ``order_id`` is optional)."""

    checkout_id: Id = None
    order_id: Id = None
    value: Amount = None
    revenue: Amount = None
    shipping: Number = None
    tax: Number = None
    discount: Number = None
    currency: Currency = None
    products: list[Product] | None = None


class OrderProperties(_Properties):
    """``Order Completed``, ``Order Refunded``, ``Order Cancelled``."""

    order_id: RequiredId
    checkout_id: Id = None
    subtotal: Amount = None
    total: Amount = None
    revenue: Amount = None
    shipping: Number = None
    tax: Number = None
    discount: Number = None
    currency: Currency = None
    products: list[Product] | None = None


class CouponProperties(_Properties):
    """``Coupon Applied``."""

    order_id: Id = None
    cart_id: Id = None
    coupon_id: Id = None
    discount: Number = None


class SignedUpProperties(_Properties):
    """``Signed Up``: contact fields, when given, are strings (a stage depends on them)."""

    email: str | None = None
    phone: str | None = None
    username: str | None = None


class SurveyProperties(_Properties):
    """``Survey Responded``: an NPS ``score`` from 0 to 10."""

    score: Score


#: The checked events and their properties' model.
ECOMMERCE_EVENTS: Final[dict[str, type[_Properties]]] = {
    "Product Viewed": ProductProperties,
    "Product List Viewed": ProductListProperties,
    "Product Added": ProductProperties,
    "Product Removed": ProductProperties,
    "Cart Viewed": CartProperties,
    "Checkout Started": CheckoutProperties,
    "Order Completed": OrderProperties,
    "Order Refunded": OrderProperties,
    "Order Cancelled": OrderProperties,
    "Coupon Applied": CouponProperties,
    "Signed Up": SignedUpProperties,
    "Survey Responded": SurveyProperties,
}


def check_properties(event: str, properties: dict[str, Any]) -> str | None:
    """Why ``properties`` break the spec of ``event`` (one sentence), or ``None`` if they don't.

    Custom events are never checked.
    """
    model = ECOMMERCE_EVENTS.get(event)
    if model is None:
        return None
    try:
        model.model_validate(properties)
    except ValidationError as exc:
        return f"{event}: {describe(exc, root='properties')}"
    return None
