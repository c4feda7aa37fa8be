"""Merges across partitions: the surviving customer's owner does the merge, never a lock.

The anonymous shopper's events and the identify that names them carry different Kafka keys,
so they live on different partitions, possibly of different engine instances. The identify
sends a merge request to the anonymous customer's owner, which links the anonymous id and
hands its state over; an anonymous event that comes after the link is forwarded. Whichever
comes first, the known customer ends with everything.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.trigger_engine.stream import handoff, runner
from services.trigger_engine.stream.handoff import partition_of
from tests.trigger_engine.engine_support import Engine, event, eventually, produce

PARTITIONS = 8


def apart(prefix: str) -> tuple[str, str]:
    """An anonymous id and a user id of this test on two different partitions."""
    for n in range(100):
        anonymous, user = f"{prefix}-anon{n}", f"{prefix}-user{n}"
        if partition_of(anonymous, PARTITIONS) != partition_of(user, PARTITIONS):
            return anonymous, user
    raise AssertionError("no two keys on different partitions")


def added(customer: str, product: str) -> Any:
    return event(
        customer, "Product Added", anonymous=True, properties={"product_id": product, "price": 10}
    )


def identify(user: str, anonymous: str) -> Any:
    return event(user, None, call="identify", anonymous_id=anonymous, traits={"email": "x@y.z"})


async def _cart(engine: Engine, customer: str, products: list[str]) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    if found is None:
        return None
    have = sorted(p["product_id"] for p in found["cart"]["products"])
    return found if have == products else None


@pytest.mark.parametrize("race", [False, True], ids=["in-turn", "together"])
async def test_an_anonymous_cart_on_another_partition_is_merged_into_the_known_customer(
    engine: Engine, producer: AIOKafkaProducer, prefix: str, race: bool
) -> None:
    anonymous, user = apart(prefix)
    await produce(producer, added(anonymous, "p1"))
    await eventually(lambda: _cart(engine, anonymous, ["p1"]), what="the anonymous cart")
    if race:  # the second add may be folded before the merge request arrives, or after
        await produce(producer, identify(user, anonymous), added(anonymous, "p2"))
    else:
        await produce(producer, identify(user, anonymous))
        await eventually(lambda: _cart(engine, user, ["p1"]), what="the merge")
        await produce(producer, added(anonymous, "p2"))  # forwarded to the known customer

    merged = await eventually(lambda: _cart(engine, user, ["p1", "p2"]), what="the whole cart")
    assert merged["metrics"]["cart_adds"] == 2
    assert anonymous in merged["anonymous_ids"]
    resolved = await engine.customer(anonymous)
    assert resolved is not None and resolved["customer_key"] == user


async def test_an_identify_before_any_anonymous_event_links_the_id_for_what_follows(
    engine: Engine, producer: AIOKafkaProducer, prefix: str
) -> None:
    anonymous, user = apart(prefix)
    await produce(producer, identify(user, anonymous))
    await eventually(lambda: engine.customer(user), what="the known customer")
    await produce(producer, added(anonymous, "p1"), added(anonymous, "p2"))

    merged = await eventually(lambda: _cart(engine, user, ["p1", "p2"]), what="the forwards")
    assert merged["metrics"]["cart_adds"] == 2
    timeline = await _timeline(engine, user)
    assert [i["data"]["event"] for i in timeline if i["type"] == "event"].count(
        "Product Added"
    ) == 2


async def test_an_alias_merges_the_previous_id_from_another_partition(
    engine: Engine, producer: AIOKafkaProducer, prefix: str
) -> None:
    previous, user = apart(prefix)
    await produce(producer, added(previous, "p1"))
    await eventually(lambda: _cart(engine, previous, ["p1"]), what="the previous id's cart")
    await produce(producer, event(user, None, call="alias", previous_id=previous))

    merged = await eventually(lambda: _cart(engine, user, ["p1"]), what="the alias merge")
    assert previous in merged["anonymous_ids"]


async def _timeline(engine: Engine, customer: str) -> list[dict[str, Any]]:
    async with engine.admin() as client:
        response = await client.get(f"/v1/customers/{customer}/timeline")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_hand_offs_are_journalled_until_their_partition_has_consumed_them(
    engine: Engine, producer: AIOKafkaProducer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker that loses data must not lose a merge: each hand-off is kept in PostgreSQL
    with where the broker put it, until its partition's checkpoint has passed it."""
    monkeypatch.setattr(runner, "_PRUNE_HANDOFFS_EVERY", 3600.0)
    anonymous, user = apart(prefix)
    await produce(producer, identify(user, anonymous))
    await eventually(lambda: engine.customer(user), what="the known customer")
    connection = await asyncpg.connect(engine.infra.database_url)
    try:
        # the merge request goes to the anonymous id's partition
        journalled = await eventually(
            lambda: connection.fetch(
                'SELECT partition, "offset", body FROM engine.handoff_journal WHERE key = $1',
                anonymous,
            ),
            what="the journalled merge request",
        )
        [(partition, offset, body)] = journalled
        request = handoff.decode(body)
        assert isinstance(request, handoff.MergeRequest) and request.target == user
        assert partition == partition_of(anonymous, PARTITIONS) and offset >= 0

        monkeypatch.setattr(runner, "_PRUNE_HANDOFFS_EVERY", 0.0)

        async def pruned() -> bool:
            count = await connection.fetchval(
                "SELECT count(*) FROM engine.handoff_journal WHERE key = $1", anonymous
            )
            return count == 0

        await eventually(pruned, what="the pruning of the consumed merge request")
    finally:
        await connection.close()
