"""The customers API (profile, timeline, erasure) and the lifecycle metrics."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from tests.support.services import Infra
from tests.trigger_engine.engine_support import (
    Engine,
    Rules,
    actions,
    erasures,
    event,
    eventually,
    produce,
    rule,
)


async def _answered(engine: Engine, customer: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["metrics"]["nps"]["responses"] else None


async def test_profile_timeline_and_erasure(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, prefix: str
) -> None:
    customer = f"{prefix}-ada"
    await produce(
        producer,
        event(customer, None, call="identify", traits={"email": "ada@example.com"}),
        event(customer, "Product Added", properties={"product_id": "p1", "price": 30}),
        event(customer, "Order Completed", properties={"order_id": "o1", "total": 30}),
        event(customer, "Survey Responded", properties={"score": 10}),
    )
    profile = await eventually(lambda: _answered(engine, customer), what="the survey answer")
    assert profile["metrics"]["orders"] == 1
    assert profile["traits"]["email"] == "ada@example.com"
    assert profile["stage"] == "first_time"
    assert profile["metrics"]["revenue"] == 30
    assert profile["metrics"]["nps"] == {"responses": 1, "last_score": 10, "score": 100.0}
    assert profile["cart"]["products"] == []
    assert [t["to"] for t in profile["stage_history"]] == ["prospect", "engaged", "first_time"]

    async with engine.admin() as client:
        timeline = (await client.get(f"/v1/customers/{customer}/timeline")).json()
        assert [i["type"] for i in timeline["items"]].count("event") == 4
        erased = await client.delete(f"/v1/customers/{customer}")
        assert erased.status_code == 202, erased.text
        assert erased.json()["erased"]["events"] == 4
        assert (await client.get(f"/v1/customers/{customer}")).status_code == 404

    [erasure] = await erasures(infra, customer)
    assert str(erasure.erasure_id) == erased.json()["erasure_id"]

    # Later events for the same id start a fresh profile.
    await produce(producer, event(customer, "Product Viewed", properties={"product_id": "p2"}))
    fresh = await eventually(lambda: engine.customer(customer), what="a fresh profile")
    assert fresh["metrics"]["orders"] == 0
    assert fresh["traits"] == {}
    assert fresh["stage"] == "visitor"


async def _sends(engine: Engine, customer: str) -> list[tuple[str, str | None]] | None:
    """(item type, action id) of the customer's action items and "sent" run records (None
    until the customer's owner has checkpointed them)."""
    async with engine.admin() as client:
        response = await client.get(f"/v1/customers/{customer}/timeline")
    if response.status_code == 404:
        return None
    items = response.json()["items"]
    found = [("action", i["data"]["id"]) for i in items if i["type"] == "action"]
    found += [
        ("run", i["data"]["action_id"])
        for i in items
        if i["type"] == "run" and i["data"]["kind"] == "sent"
    ]
    return found or None


async def test_a_send_stays_on_the_timeline_after_retention_deleted_its_outbox_row(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    customer = f"{prefix}-bo"
    send_now = [{"send": {"channel": "email", "template": "reminder"}}]
    await rules.create(rule(prefix, "reminder", steps=send_now))
    await produce(producer, event(customer, "Product Added", properties={"product_id": "p1"}))
    [action] = await actions(infra, prefix, count=1)

    # While the outbox holds the row, the send is its action item, not a second run item.
    assert await eventually(lambda: _sends(engine, customer)) == [("action", action.action_id)]

    connection = await asyncpg.connect(infra.database_url)
    try:  # what the retention job does once CLM_OUTBOX_RETENTION_DAYS have passed
        await connection.execute("DELETE FROM engine.outbox WHERE id = $1", action.action_id)
    finally:
        await connection.close()
    assert await _sends(engine, customer) == [("run", action.action_id)]


async def test_lifecycle_metrics_over_a_period(
    engine: Engine, producer: AIOKafkaProducer, prefix: str
) -> None:
    # A period of its own, decades ago, so that no other test's events fall into it.
    start = datetime(random.randrange(1980, 2010), 2, 1, tzinfo=UTC)
    end = start + timedelta(days=28)

    def day(n: int) -> datetime:
        return start + timedelta(days=n, hours=12)

    def order(who: str, n: int, when: int, total: float) -> Any:
        return event(
            f"{prefix}-{who}",
            "Order Completed",
            at=day(when),
            properties={"order_id": f"{who}-{n}", "total": total},
        )

    await produce(
        producer,
        order("a", 1, -12, 20),  # active at the start, buys again: retained
        order("a", 2, 9, 50),
        order("b", 1, -62, 20),  # gone before the period
        order("c", 1, -7, 20),  # active at the start, nothing since: lost
        order("d", 1, 4, 30),  # new in the period, buys twice
        order("d", 2, 19, 20),
        event(
            f"{prefix}-d", "Order Refunded", at=day(20), properties={"order_id": "d-2", "total": 10}
        ),
        order("e", 1, 14, 99),  # cancelled: does not count
        event(f"{prefix}-e", "Order Cancelled", at=day(15), properties={"order_id": "e-1"}),
        *[
            event(f"{prefix}-s{i}", "Survey Responded", at=day(10), properties={"score": s})
            for i, s in enumerate((10, 9, 3, 7))
        ],
    )
    params = {"from": start.isoformat(), "to": end.isoformat(), "window": "P30D"}

    async def settled() -> dict[str, Any] | None:
        async with engine.admin() as client:
            response = await client.get("/v1/metrics/lifecycle", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        done = body["orders"] == 3 and body["nps"]["responses"] == 4 and body["revenue"] == 90
        return body if done else None

    metrics = await eventually(settled, what="the period's events to be stored")
    assert metrics["customers"] == {"at_start": 2, "at_end": 2, "new": 1, "lost": 1}
    assert metrics["retention_rate"] == 0.5
    assert metrics["churn_rate"] == 0.5
    assert metrics["repeat_purchase_rate"] == 0.5
    assert (metrics["aov"], metrics["apf"], metrics["clv"]) == (30, 1.5, 90)
    assert metrics["nps"]["score"] == 25
    assert sum(metrics["stages"].values()) >= 5
