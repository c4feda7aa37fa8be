"""A lifecycle model change is retroactive: existing customers follow it without new events.

The first test watches the engine's own background pass; the second stops that engine and
drives the pass round by round (``LifecyclePasses.round``) to check its failure handling,
its lock between instances and a newer model superseding it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.trigger_engine.context import EngineContext
from services.trigger_engine.core.lifecycle import LifecycleModel, default_lifecycle
from services.trigger_engine.lifecycle import passes, reevaluation
from services.trigger_engine.lifecycle.reevaluation import LifecyclePasses
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

    # The same version's pass once more (as after losing its row): nothing left to change.
    histories = {c: (await engine.customer(c) or {})["stage_history"] for c in (one, two, three)}
    async with database(infra) as conn:
        await conn.execute(
            text(
                "UPDATE engine.lifecycle_passes SET cursor = NULL, customers = 0, "
                "transitions = 0, finished_at = NULL WHERE version = :version"
            ),
            {"version": version},
        )
        await conn.commit()
    ctx: EngineContext = engine.service.app.state.engine  # type: ignore[union-attr]
    ctx.lifecycle_wake.set()
    again = await eventually(
        pass_finished(engine, version, after=done["finished_at"]), timeout=60, what="again"
    )
    assert again["customers"] >= 3
    assert again["transitions"] == 0
    for customer, history in histories.items():
        found = await engine.customer(customer)
        assert found is not None and found["stage_history"] == history
    assert len(await actions(infra, prefix, count=2, settle=1.0)) == 2


@pytest.fixture
def fail_once(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make the next pass chunk fail after writing its customers (rolled back); the list
    counts the failures."""
    failures: list[int] = []
    real = passes.advance

    async def advance(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise RuntimeError("the chunk fails after its writes")
        return await real(*args, **kwargs)

    monkeypatch.setattr(reevaluation.passes, "advance", advance)
    yield failures


def _failures() -> float:
    return REGISTRY.get_sample_value("clm_engine_lifecycle_pass_failures_total") or 0.0


async def _drain(worker: LifecyclePasses, *, limit: int = 20_000) -> int:
    """Rounds until nothing is left to do; returns how many rounds worked."""
    for rounds in range(limit):
        if not (await worker.round()).worked:
            return rounds
    raise AssertionError("the pass did not finish")


async def test_a_pass_survives_a_failed_chunk_skips_a_broken_customer_and_yields_to_a_newer_model(
    infra: Infra,
    engine: Engine,
    producer: AIOKafkaProducer,
    prefix: str,
    default_model: int,
    fail_once: list[int],
) -> None:
    await engine.stop()
    manual = Engine(
        infra,
        group=str(engine.settings_kwargs["consumer_group"]),
        run_lifecycle_passes=False,
        lifecycle_pass_chunk=200,
    )
    await manual.start()
    rules = Rules(manual)
    broken = f"{prefix}-broken"
    try:
        await rules.create(loyal_rule(prefix))
        two, three = f"{prefix}-two", f"{prefix}-three"
        # The pass walks all customers in key order, and the round after the failed chunk
        # does the first one alone: whatever the random prefix, it is none of the three
        # below (this one sorts before them, and a visitor never moves).
        bystander = f"{prefix}-a-bystander"
        await produce(
            producer,
            event(bystander, "Home", call="page"),
            *orders(two, 2),
            *orders(three, 3),
            *orders(broken, 2),
        )
        await eventually(in_stage(manual, bystander, "visitor"), what="the bystander")
        for customer in (two, three, broken):
            await eventually(in_stage(manual, customer, "repeat"), what=f"{customer} repeat")
        ctx: EngineContext = manual.service.app.state.engine  # type: ignore[union-attr]
        worker = LifecyclePasses(ctx)
        failures_before = _failures()

        first = await put_model(manual, LOYAL_AT_TWO)
        # A chunk that fails leaves nothing behind, not even the pass it started.
        assert (await worker.round()).worked and fail_once == [1]
        status = await reevaluation_status(manual)
        assert (status["version"], status["status"], status["customers"]) == (
            first,
            "pending",
            0,
        )
        assert _model_transitions(await manual.customer(two) or {}) == []
        # Then it goes on one customer at a time.
        chunk = await worker.round()
        assert (chunk.worked, chunk.version, chunk.customers) == (True, first, 1)

        # While another instance holds the pass, this one skips it rather than wait.
        async with database(infra) as conn:
            await conn.execute(
                text("SELECT 1 FROM engine.lifecycle_passes WHERE version = :v FOR UPDATE"),
                {"v": first},
            )
            assert not (await LifecyclePasses(ctx).round()).worked
            await conn.rollback()

        # A customer whose state cannot be read is skipped alone, not the pass stopped.
        async with database(infra) as conn:
            await conn.execute(
                text("UPDATE engine.customers SET state = '{\"x\": 1}' WHERE customer_key = :k"),
                {"k": broken},
            )
            await conn.commit()

        # A newer model supersedes the unfinished pass: customers follow the newest.
        second = await put_model(manual, LOYAL_AT_THREE)
        chunk = await worker.round()
        assert (chunk.worked, chunk.version) == (True, second)
        assert await _drain(worker) > 0

        status = await reevaluation_status(manual)
        assert (status["version"], status["status"]) == (second, "finished")
        earlier = {p["version"]: p for p in status["earlier"]}
        assert (earlier[first]["status"], earlier[first]["customers"]) == ("superseded", 1)
        assert _failures() == failures_before + 1  # the broken customer, skipped alone

        moved = await manual.customer(three)
        assert moved is not None and moved["stage"] == "loyal"
        [transition] = _model_transitions(moved)
        assert transition["cause_message_id"] == f"lifecycle:v{second}"
        stayed = await manual.customer(two)
        assert stayed is not None and stayed["stage"] == "repeat"
        assert all(
            t["cause_message_id"] != f"lifecycle:v{second}" for t in _model_transitions(stayed)
        )
        [sent] = await actions(infra, prefix, count=1, settle=1.0)
        assert sent.customer_key == three

        # Nothing is left: another round finds the newest pass finished.
        assert not (await worker.round()).worked
    finally:
        async with database(infra) as conn:
            await conn.execute(
                text("DELETE FROM engine.customers WHERE customer_key = :k"), {"k": broken}
            )
            await conn.commit()
        await rules.delete_all()
        await manual.stop()
        await engine.start()
