"""A customer's profile and the pure fold that builds it from events.

The profile is what rules and stages look at: identity, traits (email, phone, timezone,
consent, anything ``identify`` sent), the device's time zone (Segment's ``context.timezone``),
order metrics, the open cart and NPS answers. Metrics
are derived from ``order_log`` (one record per ``order_id``) so a duplicate, refunded or
cancelled order can never be counted twice.

Plain data (``msgspec.Struct``): the engine folds millions of events into these, so they
cost what a slotted object costs; validation happened at the edge (the event record).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from shared.envelope import Event

from .plain import deep_copy
from .quiet_hours import zone_or_none

#: NPS answers kept per profile: enough for "latest score" and recent trends.
MAX_NPS_ANSWERS: Final = 20

# What an event changed in a profile (the answer of :func:`apply_event_in_place`, a bit
# set), so that a step recomputes only what depends on it (a page view changes no stage).
SEEN: Final = 1  #: first_seen_at / last_seen_at
IDENTITY: Final = 2  #: user_id / anonymous_ids
TRAITS: Final = 4  #: traits / context_timezone
COMMERCE: Final = 8  #: orders, cart, checkouts, NPS answers


class CartItem(msgspec.Struct, kw_only=True):
    """One line of the open cart; ``added_at`` lets an order clear only what came before it."""

    product_id: str | None = None
    sku: str | None = None
    name: str | None = None
    price: float | None = None
    quantity: int = 1
    added_at: datetime

    def same_product(self, other: CartItem) -> bool:
        if self.product_id is not None or other.product_id is not None:
            return self.product_id == other.product_id
        return self.sku == other.sku and self.name == other.name


class Cart(msgspec.Struct, kw_only=True):
    products: list[CartItem] = msgspec.field(default_factory=list)
    updated_at: datetime | None = None

    @property
    def value(self) -> float:
        return round(sum((item.price or 0.0) * item.quantity for item in self.products), 2)


class OrderRecord(msgspec.Struct, kw_only=True):
    total: float
    at: datetime
    refunded: float = 0.0
    cancelled: bool = False


class NpsAnswer(msgspec.Struct, kw_only=True):
    score: int
    at: datetime


class Profile(msgspec.Struct, kw_only=True):
    """Everything the engine knows about one customer."""

    customer_key: str
    user_id: str | None = None
    anonymous_ids: list[str] = msgspec.field(default_factory=list)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    orders: int = 0
    revenue: float = 0.0
    aov: float = 0.0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    cart_adds: int = 0
    checkouts: int = 0
    cart: Cart = msgspec.field(default_factory=Cart)
    nps: list[NpsAnswer] = msgspec.field(default_factory=list)
    order_log: dict[str, OrderRecord] = msgspec.field(default_factory=dict)
    #: the last valid IANA zone the customer's device sent as ``context.timezone``; quiet
    #: hours use it when ``traits.timezone`` is absent or invalid
    context_timezone: str | None = None

    @property
    def email(self) -> str | None:
        return _text(self.traits.get("email"))

    @property
    def phone(self) -> str | None:
        return _text(self.traits.get("phone"))

    @property
    def known(self) -> bool:
        """Reachable: we have an email address or a phone number."""
        return self.email is not None or self.phone is not None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _str_id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    return str(value) if isinstance(value, str | int | float) else None


def _amount(properties: dict[str, Any]) -> float | None:
    """Order amount as the Segment spec names it: ``total``, then ``revenue``, then products."""
    for name in ("total", "revenue", "value"):
        amount = _number(properties.get(name))
        if amount is not None:
            return amount
    products = properties.get("products")
    if isinstance(products, list) and products:
        return sum(
            (_number(p.get("price")) or 0.0) * (_number(p.get("quantity")) or 1.0)
            for p in products
            if isinstance(p, dict)
        )
    return None


def _cart_item(properties: dict[str, Any], at: datetime) -> CartItem:
    quantity = _number(properties.get("quantity"))
    return CartItem(
        product_id=_str_id(properties.get("product_id")),
        sku=_str_id(properties.get("sku")),
        name=_text(properties.get("name")),
        price=_number(properties.get("price")),
        quantity=max(1, int(quantity)) if quantity is not None else 1,
        added_at=at,
    )


def recompute_metrics(profile: Profile) -> None:
    """Derive order metrics from ``order_log`` (in place; callers own a copy)."""
    if not profile.order_log and not profile.orders and profile.last_order_at is None:
        if profile.revenue or profile.aov or profile.first_order_at is not None:
            profile.revenue = profile.aov = 0.0
            profile.first_order_at = None
        return  # no orders, nothing to derive (most events of most customers)
    live = [order for order in profile.order_log.values() if not order.cancelled]
    orders = len(live)
    revenue = round(sum(max(0.0, o.total - o.refunded) for o in live), 2)
    profile.orders = orders
    profile.revenue = revenue
    profile.aov = round(revenue / orders, 2) if orders else 0.0
    profile.first_order_at = min((o.at for o in live), default=None)
    profile.last_order_at = max((o.at for o in live), default=None)


def _add_to_cart(profile: Profile, item: CartItem) -> None:
    for line in profile.cart.products:
        if line.same_product(item):
            line.quantity += item.quantity
            line.added_at = max(line.added_at, item.added_at)
            if item.price is not None:
                line.price = item.price
            return
    profile.cart.products.append(item)


def _remove_from_cart(profile: Profile, item: CartItem, quantity_given: bool) -> None:
    for line in profile.cart.products:
        if line.same_product(item):
            line.quantity = line.quantity - item.quantity if quantity_given else 0
    profile.cart.products = [line for line in profile.cart.products if line.quantity > 0]


def _clear_cart_before(profile: Profile, at: datetime) -> None:
    """An order empties the cart as it was then; later additions stay open."""
    profile.cart.products = [line for line in profile.cart.products if line.added_at > at]


def _apply_identity(profile: Profile, event: Event) -> int:
    touched = 0
    if event.user_id and event.user_id != profile.user_id:
        profile.user_id = event.user_id
        touched = IDENTITY
    for anon in (event.anonymous_id, event.previous_id):
        if anon and anon != profile.user_id and anon not in profile.anonymous_ids:
            profile.anonymous_ids.append(anon)
            touched = IDENTITY
    traits = profile.traits
    context_traits = event.context.get("traits")
    if isinstance(context_traits, dict) and context_traits:
        traits.update(context_traits)
        touched |= TRAITS
    if event.traits:
        if event.call == "identify":
            traits.update(event.traits)
        else:
            traits.update({k: v for k, v in event.traits.items() if v is not None})
        touched |= TRAITS
    # Segment clients send the device's zone on every call; keep the last valid one (an
    # unknown or malformed name is ignored). Checked only on a change: most events repeat it.
    device_zone = event.context.get("timezone")
    if (
        isinstance(device_zone, str)
        and device_zone != profile.context_timezone
        and zone_or_none(device_zone) is not None
    ):
        profile.context_timezone = device_zone.strip()
        touched |= TRAITS
    return touched


#: The track events that change order metrics, the cart or NPS answers.
_COMMERCE_EVENTS: Final = frozenset(
    {
        "Product Added",
        "Product Removed",
        "Checkout Started",
        "Order Completed",
        "Order Refunded",
        "Order Cancelled",
        "Survey Responded",
    }
)


def _apply_commerce(profile: Profile, event: Event) -> bool:
    """Fold a commerce event in; True when the order log changed (metrics to derive)."""
    at, props, name = event.timestamp, event.properties, event.event
    order_id = _str_id(props.get("order_id"))
    if name == "Product Added":
        profile.cart_adds += 1
        if profile.last_order_at is None or at > profile.last_order_at:
            _add_to_cart(profile, _cart_item(props, at))
            profile.cart.updated_at = max(at, profile.cart.updated_at or at)
    elif name == "Product Removed":
        _remove_from_cart(profile, _cart_item(props, at), "quantity" in props)
        profile.cart.updated_at = max(at, profile.cart.updated_at or at)
    elif name == "Checkout Started":
        profile.checkouts += 1
    elif name == "Order Completed" and order_id is not None:
        _clear_cart_before(profile, at)
        if order_id not in profile.order_log:
            profile.order_log[order_id] = OrderRecord(total=_amount(props) or 0.0, at=at)
            return True
    elif name == "Order Refunded" and order_id in profile.order_log:
        # A refund of an order we never saw changes nothing: we never counted its revenue.
        order = profile.order_log[order_id]
        amount = _amount(props)
        remaining = order.total - order.refunded
        order.refunded += remaining if amount is None else min(max(amount, 0.0), remaining)
        return True
    elif name == "Order Cancelled" and order_id in profile.order_log:
        profile.order_log[order_id].cancelled = True
        return True
    elif name == "Survey Responded":
        score = _number(props.get("score"))
        if score is not None and score == int(score) and 0 <= score <= 10:
            answers = [*profile.nps, NpsAnswer(score=int(score), at=at)]
            answers.sort(key=lambda answer: answer.at)
            profile.nps = answers[-MAX_NPS_ANSWERS:]
    return False


def apply_event(profile: Profile, event: Event) -> Profile:
    """The profile after ``event``; ``profile`` itself is left untouched."""
    updated = deep_copy(profile)
    apply_event_in_place(updated, event)
    return updated


def apply_event_in_place(profile: Profile, event: Event) -> int:
    """:func:`apply_event` on a profile the caller owns (a step's working copy); returns what
    it may have changed (:data:`SEEN`, :data:`IDENTITY`, :data:`TRAITS`, :data:`COMMERCE`)."""
    at = event.timestamp
    touched = 0
    # = min(at, first or at) / max(at, last or at)
    first, last = profile.first_seen_at, profile.last_seen_at
    if first is None or not first < at:
        profile.first_seen_at = at
        touched = SEEN
    if last is None or not last > at:
        profile.last_seen_at = at
        touched = SEEN
    touched |= _apply_identity(profile, event)
    if event.call == "track" and event.event in _COMMERCE_EVENTS:
        if _apply_commerce(profile, event):
            recompute_metrics(profile)
        touched |= COMMERCE
    return touched


def merge(known: Profile, anonymous: Profile) -> Profile:
    """Fold an anonymous profile into a known one (identify/alias): cart and counts carry over.

    The known profile's key and traits win on conflict; orders are unioned by ``order_id``;
    counters add up; the open cart keeps both carts' lines that no order has closed.
    """
    merged = deep_copy(known)
    merged.user_id = known.user_id or anonymous.user_id
    for anon in [anonymous.customer_key, *anonymous.anonymous_ids]:
        if anon not in merged.anonymous_ids and anon not in (merged.customer_key, merged.user_id):
            merged.anonymous_ids.append(anon)
    merged.traits = {**anonymous.traits, **known.traits}
    merged.context_timezone = known.context_timezone or anonymous.context_timezone
    firsts = [t for t in (known.first_seen_at, anonymous.first_seen_at) if t is not None]
    lasts = [t for t in (known.last_seen_at, anonymous.last_seen_at) if t is not None]
    merged.first_seen_at = min(firsts, default=None)
    merged.last_seen_at = max(lasts, default=None)
    merged.cart_adds = known.cart_adds + anonymous.cart_adds
    merged.checkouts = known.checkouts + anonymous.checkouts
    for order_id, order in anonymous.order_log.items():
        merged.order_log.setdefault(order_id, msgspec.structs.replace(order))
    recompute_metrics(merged)
    for item in anonymous.cart.products:
        _add_to_cart(merged, msgspec.structs.replace(item))
    if merged.last_order_at is not None:
        _clear_cart_before(merged, merged.last_order_at)
    updates = [t for t in (known.cart.updated_at, anonymous.cart.updated_at) if t is not None]
    merged.cart.updated_at = max(updates, default=None)
    merged.nps = sorted([*known.nps, *anonymous.nps], key=lambda a: a.at)[-MAX_NPS_ANSWERS:]
    return merged
