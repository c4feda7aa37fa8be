"""A lifecycle model change is retroactive: existing customers follow it without new events.

Each partition's owner walks its stored customers under the new model (a chunk at a time,
between batches); the pass is finished when every partition is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.trigger_engine.core.lifecycle import LifecycleModel, default_lifecycle
from shared.db import create_engine
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

LOYAL_AT_TWO = default_lifecycle(loyal_orders=2)
LOYAL_AT_THREE = default_lifecycle(loyal_orders=3)


def orders(customer: str, count: int) -> list[Any]:
    t0 = now() - timedelta(minutes=count)
    return [
        event(
            customer,
            "Order Completed",
            at=t0 + timedelta(seconds=n),
            properties={"order_id": f"{customer}-o{n}", "total": 30, "currency": "EUR"},
        )
        for n in range(count)
    ]


def loyal_rule(prefix: str) -> dict[str, Any]:
    return rule(
        prefix,
        "loyal-thanks",
        trigger={"type": "stage_entered", "stage": "loyal"},
        steps=[{"send": {"channel": "email", "template": "loyal_thanks"}}],
        reentry=None,
    )


async def put_model(engine: Engine, model: LifecycleModel) -> int:
    async with engine.admin() as client:
        response = await client.put("/v1/lifecycle", json=model.model_dump(mode="json"))
    assert response.status_code == 200, response.text
    version: int = response.json()["version"]
    return version


async def reevaluation_status(engine: Engine) -> dict[str, Any]:
    async with engine.admin() as client:
        response = await client.get("/v1/lifecycle/reevaluation")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def pass_finished(engine: Engine, version: int, *, after: str | None = None) -> Callable[[], Any]:
    async def probe() -> dict[str, Any] | None:
        body = await reevaluation_status(engine)
        done = body["version"] == version and body["status"] == "finished"
        return body if done and (after is None or body["finished_at"] > after) else None

    return probe


def in_stage(engine: Engine, customer: str, stage: str) -> Callable[[], Any]:
    async def probe() -> dict[str, Any] | None:
        found = await engine.customer(customer)
        return found if found is not None and found["stage"] == stage else None

    return probe


@asynccontextmanager
async def database(infra: Infra) -> AsyncIterator[AsyncConnection]:
    db = create_engine(infra.database_url, pool_size=1, application_name="clm-tests")
    try:
        async with db.connect() as conn:
            yield conn
    finally:
        await db.dispose()


@pytest.fixture
async def default_model(engine: Engine) -> AsyncIterator[int]:
    """The default model stored and its pass finished; stored again after the test."""
    version = await put_model(engine, default_lifecycle())
    await eventually(pass_finished(engine, version), timeout=60, what="the default's pass")
    yield version
    if engine.service is not None:
        await put_model(engine, default_lifecycle())


def _model_transitions(customer: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in customer["stage_history"] if t["cause"] == "model"]


async def test_a_new_model_moves_existing_customers_once_without_any_new_event(
    infra: Infra,
    engine: Engine,
    producer: AIOKafkaProducer,
    rules: Rules,
    prefix: str,
    default_model: int,
) -> None:
    await rules.create(loyal_rule(prefix))
    one, two, three = f"{prefix}-one", f"{prefix}-two", f"{prefix}-three"
    await produce(producer, *orders(one, 1), *orders(two, 2), *orders(three, 3))
    for customer, stage in ((one, "first_time"), (two, "repeat"), (three, "repeat")):
        await eventually(in_stage(engine, customer, stage), what=f"{customer} {stage}")

    version = await put_model(engine, LOYAL_AT_TWO)

    done = await eventually(pass_finished(engine, version), timeout=60, what="the pass")
    assert done["customers"] >= 3 and done["transitions"] >= 2
    assert done["started_at"] <= done["finished_at"]
    assert done["earlier"][0]["version"] == default_model
    for customer in (two, three):
        found = await engine.customer(customer)
        assert found is not None and found["stage"] == "loyal"
        [moved] = _model_transitions(found)
        assert moved == found["stage_history"][-1]
        assert (moved["from"], moved["to"]) == ("repeat", "loyal")
        assert (moved["cause_event"], moved["cause_message_id"]) == (None, f"lifecycle:v{version}")
        assert moved["reactivated"] is False
        assert found["metrics"]["orders"] == (2 if customer == two else 3)
    unmoved = await engine.customer(one)
    assert unmoved is not None and unmoved["stage"] == "first_time"
    assert _model_transitions(unmoved) == []

    sent = await actions(infra, prefix, count=2, settle=1.0)
    assert sorted(a.customer_key for a in sent) == sorted([two, three])
    for action in sent:
        assert action.data["customer"]["stage"] == "loyal"
        assert action.data["context"]["trigger"]["type"] == "stage_entered"

    # The same version's pass once more (as after losing its progress): nothing to change.
    histories = {c: (await engine.customer(c) or {})["stage_history"] for c in (one, two, three)}
    await engine.stop()  # its last checkpoint would record the pass as done again
    async with database(infra) as conn:
        await conn.execute(
            text(
                "UPDATE engine.lifecycle_passes SET customers = 0, transitions = 0, "
                "finished_at = NULL WHERE version = :version"
            ),
            {"version": version},
        )
        await conn.execute(text("UPDATE engine.partitions SET pass_version = NULL"))
        await conn.commit()
    await engine.start()  # the owners claim their partitions anew and find no pass done
    again = await eventually(
        pass_finished(engine, version, after=done["finished_at"]), timeout=60, what="again"
    )
    assert again["customers"] >= 3
    assert again["transitions"] == 0
    for customer, history in histories.items():
        found = await engine.customer(customer)
        assert found is not None and found["stage_history"] == history
    assert len(await actions(infra, prefix, count=2, settle=1.0)) == 2


async def test_a_newer_model_supersedes_an_unfinished_pass(
    engine: Engine, producer: AIOKafkaProducer, prefix: str, default_model: int
) -> None:
    customer = f"{prefix}-buyer"
    await produce(producer, *orders(customer, 2))
    await eventually(in_stage(engine, customer, "repeat"), what="repeat")

    first = await put_model(engine, LOYAL_AT_TWO)
    second = await put_model(engine, LOYAL_AT_THREE)

    done = await eventually(pass_finished(engine, second), timeout=60, what="the newer pass")
    # The owners may have seen both versions at once: the older one then has no pass at all.
    earlier = {p["version"]: p["status"] for p in done["earlier"]}
    assert earlier.get(first, "superseded") in ("finished", "superseded")
    found = await engine.customer(customer)
    assert found is not None and found["stage"] == "repeat"  # loyal takes three orders now
