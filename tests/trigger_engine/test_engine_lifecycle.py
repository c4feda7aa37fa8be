"""Lifecycle stages with second-scale thresholds: every default stage, and a rule on at_risk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from services.trigger_engine.core.lifecycle import default_lifecycle
from tests.support.services import Infra
from tests.trigger_engine.engine_support import (
    Engine,
    Rules,
    actions,
    event,
    eventually,
    now,
    produce,
    rule,
)

#: The walk's orders must all be folded within AT_RISK_AFTER of its first event (else the
#: customer goes at risk between two of them): seconds to spare on a slow machine.
AT_RISK_AFTER = timedelta(seconds=4)
LAPSED_AFTER = timedelta(seconds=6)


@pytest.fixture(scope="module")
async def short_lifecycle(engine: Engine) -> AsyncIterator[dict[str, Any]]:
    """The default model with at_risk after 4 s and lapsed after 6 s; restored afterwards."""
    model = default_lifecycle(at_risk_after=AT_RISK_AFTER, lapsed_after=LAPSED_AFTER).model_dump(
        mode="json"
    )
    async with engine.admin() as client:
        response = await client.put("/v1/lifecycle", json=model)
        assert response.status_code == 200, response.text
        stored: dict[str, Any] = response.json()
    yield stored
    async with engine.admin() as client:
        restore = default_lifecycle().model_dump(mode="json")
        assert (await client.put("/v1/lifecycle", json=restore)).status_code == 200


def order(customer: str, number: int, at: Any) -> Any:
    return event(
        customer,
        "Order Completed",
        at=at,
        properties={"order_id": f"o-{number}", "total": 40, "currency": "EUR"},
    )


async def _stage(engine: Engine, customer: str, stage: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["stage"] == stage else None


async def test_a_customer_walks_through_every_default_stage(
    engine: Engine, producer: AIOKafkaProducer, short_lifecycle: dict[str, Any], prefix: str
) -> None:
    assert short_lifecycle["version"] >= 1
    customer = f"{prefix}-walker"
    t0 = now()
    tick = iter(range(100))

    def at() -> Any:
        return t0 + timedelta(milliseconds=next(tick))

    await produce(
        producer,
        event(customer, "Home", call="page", at=at()),
        event(customer, None, call="identify", traits={"email": "w@example.com"}, at=at()),
        event(customer, "Product Added", properties={"product_id": "p1", "price": 40}, at=at()),
        *[order(customer, n, at()) for n in range(1, 6)],
    )

    lapsed = await eventually(
        lambda: _stage(engine, customer, "lapsed"), timeout=20, what="the lapsed stage"
    )
    path = [t["to"] for t in lapsed["stage_history"]]
    assert path == [
        "visitor",
        "prospect",
        "engaged",
        "first_time",
        "repeat",
        "loyal",
        "at_risk",
        "lapsed",
    ]
    by_stage = {t["to"]: t for t in lapsed["stage_history"]}
    last_order = t0 + timedelta(milliseconds=7)
    assert datetime.fromisoformat(by_stage["at_risk"]["at"]) == last_order + AT_RISK_AFTER
    assert datetime.fromisoformat(by_stage["lapsed"]["at"]) == last_order + LAPSED_AFTER
    assert by_stage["at_risk"]["cause"] == "time"
    assert lapsed["metrics"]["orders"] == 5


async def test_stage_triggered_rule_fires_on_at_risk_and_a_purchase_reactivates(
    infra: Infra,
    engine: Engine,
    producer: AIOKafkaProducer,
    rules: Rules,
    short_lifecycle: dict[str, Any],
    prefix: str,
) -> None:
    await rules.create(
        rule(
            prefix,
            "reengage",
            trigger={"type": "stage_entered", "stage": "at_risk"},
            steps=[{"send": {"channel": "email", "template": "free_delivery"}}],
        )
    )
    customer = f"{prefix}-buyer"
    t0 = now()
    await produce(producer, order(customer, 1, t0))

    [sent] = await actions(infra, prefix, count=1, settle=0.5)
    assert sent.data["customer"]["stage"] == "at_risk"
    assert sent.data["context"]["trigger"]["type"] == "stage_entered"
    assert sent.created_at == t0 + AT_RISK_AFTER

    await produce(producer, order(customer, 2, now()))
    back = await eventually(lambda: _stage(engine, customer, "repeat"), what="a repeat buyer")
    last = back["stage_history"][-1]
    assert last["from"] in ("at_risk", "lapsed")  # lapsed if this machine is very slow
    assert (last["to"], last["reactivated"]) == ("repeat", True)
