"""A deterministic synthetic storefront for the engine bench: ``EventV1`` records, seeded.

Views far outnumber adds, adds outnumber orders. Most customers are known (a user id and
an email); some browse anonymously, and some of those sign in later (an identify naming
both ids: a merge). Event times are spread over the hour before the run, increasing, so
every rule's ``max_event_age`` admits them and each customer's events are in order.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from shared.ids import event_id

SOURCE = "bench-shop"

#: (name, call, weight): views >> adds > checkouts > orders.
MIX: tuple[tuple[str, str, float], ...] = (
    ("Product Viewed", "track", 64.0),
    ("Product List Viewed", "track", 8.0),
    ("Home", "page", 6.0),
    ("Product Added", "track", 9.0),
    ("Product Removed", "track", 1.5),
    ("Cart Viewed", "track", 3.0),
    ("Checkout Started", "track", 2.5),
    ("Order Completed", "track", 2.5),
    ("Signed Up", "track", 1.0),
    ("", "identify", 2.0),
    ("Survey Responded", "track", 0.5),
)
ANONYMOUS_SHARE = 0.15
PRODUCTS = 400


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    message_id: str


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _product(rng: random.Random) -> dict[str, Any]:
    number = rng.randrange(PRODUCTS)
    return {
        "product_id": f"p-{number}",
        "name": f"Product {number}",
        "price": round(5 + (number % 60) * 1.5, 2),
        "quantity": 1,
    }


class Storefront:
    """``skew`` 0: every customer as active as any other. Above 0: activity follows a
    discrete Pareto (Zipf) law, the customer of rank ``r`` (from 1) sending in proportion to
    ``r ** -skew`` (about 1.0: a few percent of the customers send half the events); the
    ranks are shuffled over the customer numbers."""

    def __init__(self, *, customers: int, seed: int, skew: float = 0.0) -> None:
        self.customers = customers
        self.rng = random.Random(seed)
        self.ranked: list[int] | None = None
        self.cumulative: list[float] = []
        if skew > 0:
            self.ranked = list(range(customers))
            self.rng.shuffle(self.ranked)
            self.cumulative = list(
                itertools.accumulate((rank + 1) ** -skew for rank in range(customers))
            )
        self.names = [m[0] for m in MIX]
        self.calls = {m[0]: m[1] for m in MIX}
        self.weights = [m[2] for m in MIX]
        self.sequence = 0
        self.signed_in: set[int] = set()

    def record(
        self,
        customer: int,
        name: str,
        at: datetime,
        *,
        received: datetime,
        prefix: str = "",
    ) -> Record:
        rng = self.rng
        self.sequence += 1
        message_id = f"{prefix}m{self.sequence}"
        anonymous = customer % 100 < ANONYMOUS_SHARE * 100 and customer not in self.signed_in
        user = f"{prefix}u{customer}"
        call = self.calls.get(name, "track")
        body: dict[str, Any] = {
            "type": "event",
            "version": 1,
            "event_id": str(event_id(SOURCE, message_id)),
            "source": SOURCE,
            "message_id": message_id,
            "call": call,
            "event": name or None,
            "properties": {},
            "traits": {},
            "context": {"library": {"name": "bench"}},
            "timestamp": _iso(at),
            "received_at": _iso(received),
        }
        if call == "identify":
            if anonymous:
                self.signed_in.add(customer)  # from now on known: a merge
            body["traits"] = {"email": f"{user}@example.com", "first_name": "Bench"}
            body.update(customer_key=user, user_id=user, anonymous_id=f"{prefix}a{customer}")
        elif anonymous:
            key = f"{prefix}a{customer}"
            body.update(customer_key=key, anonymous_id=key)
        else:
            body.update(customer_key=user, user_id=user)
        if name in ("Product Viewed", "Product Added", "Product Removed"):
            body["properties"] = _product(rng)
        elif name == "Order Completed":
            products = [_product(rng) for _ in range(rng.randint(1, 3))]
            body["properties"] = {
                "order_id": f"{prefix}o{self.sequence}",
                "total": round(sum(p["price"] for p in products), 2),
                "currency": "EUR",
                "products": products,
            }
        elif name == "Signed Up":
            body["traits"] = {"email": f"{user}@example.com"}
        elif name == "Survey Responded":
            body["properties"] = {"score": rng.randint(0, 10)}
        key = str(body["customer_key"])
        return Record(key.encode(), orjson.dumps(body), message_id)

    def customer(self) -> int:
        """The customer of the next event."""
        if self.ranked is None:
            return self.rng.randrange(self.customers)
        cumulative = self.cumulative
        rank = bisect.bisect(cumulative, self.rng.random() * cumulative[-1])
        return self.ranked[min(rank, self.customers - 1)]

    def history(self, events: int, *, now: datetime) -> Iterator[Record]:
        """``events`` records over the hour before ``now``, in event time order."""
        span = timedelta(hours=1)
        start = now - span
        step = span / max(events, 1)
        for i in range(events):
            customer = self.customer()
            name = self.rng.choices(self.names, self.weights)[0]
            yield self.record(customer, name, start + step * i, received=now)
