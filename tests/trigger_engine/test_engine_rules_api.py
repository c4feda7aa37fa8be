"""The rules and lifecycle API: validation messages, conflicts, versions, simulation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.rule_checks import RuleError, parse_rule
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
    seconds,
)

MUG = {"product_id": "p-mug", "name": "Mug", "price": 25}


def _core_message(body: dict[str, Any]) -> str:
    with pytest.raises(RuleError) as caught:
        parse_rule(body)
    return str(caught.value)


async def test_invalid_rules_are_refused_with_the_core_validation_messages(
    engine: Engine, prefix: str
) -> None:
    structural = rule(
        prefix,
        "broken",
        trigger={
            "type": "event",
            "event": "Product Added",
            "where": [{"path": "event.properties.price", "op": "bigger", "value": 20}],
        },
        steps=[{"wait": "PT1X"}, {"send": {"channel": "email", "template": "t"}}],
    )
    semantic = rule(
        prefix,
        "unreachable",
        trigger={"type": "stage_entered", "stage": "vip"},
        steps=[{"send": {"channel": "email", "template": "t"}}, {"wait": "PT1H"}],
    )
    async with engine.admin() as client:
        for body in (structural, semantic):
            response = await client.post("/v1/rules", json=body)
            assert response.status_code == 422, response.text
            error = response.json()
            assert error["code"] == "invalid"
            assert error["message"] == _core_message(body)
            assert all({"loc", "message"} <= set(e) for e in error["errors"])
        messages = " | ".join(e["message"] for e in error["errors"])
        assert "unknown stage 'vip'" in messages
        assert "a wait after the last send leads to nothing" in messages
        assert (await client.get(f"/v1/rules/{prefix}-broken")).status_code == 404


async def test_rule_lifecycle_create_conflict_update_versions_delete(
    engine: Engine, rules: Rules, prefix: str
) -> None:
    body = rule(prefix, "crud")
    created = await rules.create(body)
    assert (created["version"], created["key"]) == (1, f"{prefix}-crud")
    key = created["key"]
    async with engine.admin() as client:
        duplicate = await client.post("/v1/rules", json=body)
        assert duplicate.status_code == 409
        assert duplicate.json()["code"] == "conflict"

        changed = {**body, "name": "renamed", "enabled": False}
        updated = await client.put(f"/v1/rules/{key}", json=changed)
        assert updated.status_code == 200, updated.text
        assert (updated.json()["version"], updated.json()["enabled"]) == (2, False)
        wrong_key = await client.put(f"/v1/rules/{key}", json={**body, "key": "other"})
        assert wrong_key.status_code == 422

        listed = [r["key"] for r in (await client.get("/v1/rules")).json()["items"]]
        assert key in listed
        assert (await client.get(f"/v1/rules/{key}")).json()["name"] == "renamed"
        versions = (await client.get(f"/v1/rules/{key}/versions")).json()["items"]
        assert [(v["version"], v["rule"]["name"]) for v in versions] == [
            (1, body["name"]),
            (2, "renamed"),
        ]

        assert (await client.delete(f"/v1/rules/{key}")).status_code == 204
        assert (await client.get(f"/v1/rules/{key}")).status_code == 404
        assert (await client.delete(f"/v1/rules/{key}")).status_code == 404
        recreated = await client.post("/v1/rules", json=body)
        assert recreated.status_code == 201
        assert recreated.json()["version"] == 3  # versions are never reused

        anonymous = await httpx.AsyncClient(base_url=client.base_url).get("/v1/rules")
        assert anonymous.status_code == 401


async def test_runs_in_flight_stay_on_the_version_they_started_on(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    body = rule(
        prefix, "pinned", steps=[{"wait": "PT2S"}, {"send": {"channel": "email", "template": "v1"}}]
    )
    await rules.create(body)
    shopper = f"{prefix}-shopper"
    await produce(producer, event(shopper, "Product Added", properties=MUG))
    await eventually(lambda: _has_timer(engine, shopper), what="the run to wait")
    v2 = {**body, "steps": [{"send": {"channel": "email", "template": "v2"}}]}
    async with engine.admin() as client:
        assert (await client.put(f"/v1/rules/{prefix}-pinned", json=v2)).status_code == 200

    [sent] = await actions(infra, prefix, count=1, settle=0.5)
    assert (sent.data["rule_version"], sent.data["template"]) == (1, "v1")


async def _has_timer(engine: Engine, customer: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["timers"] else None


async def _with_orders(engine: Engine, customer: str, orders: int) -> dict[str, Any] | None:
    """The customer once their cart add and ``orders`` orders are folded (and so stored)."""
    found = await engine.customer(customer)
    if found is None or (found["metrics"]["cart_adds"], found["metrics"]["orders"]) != (1, orders):
        return None
    return found


async def test_simulation_replays_stored_history_without_sending(
    engine: Engine, producer: AIOKafkaProducer, prefix: str
) -> None:
    t0 = now() - seconds(30)
    abandoner, buyer = f"{prefix}-abandoner", f"{prefix}-buyer"
    await produce(
        producer,
        event(abandoner, "Product Added", at=t0, properties=MUG),
        event(buyer, "Product Added", at=t0, properties=MUG),
        event(buyer, "Order Completed", at=t0 + seconds(0.5), properties={"order_id": "o1"}),
    )
    # An event is stored by the batch that folds it: wait for every event to show on its
    # customer (the buyer's order may come in a later batch than the adds).
    await eventually(lambda: _with_orders(engine, buyer, 1), what="the buyer's order stored")
    await eventually(lambda: _with_orders(engine, abandoner, 0), what="the abandoner's add stored")
    draft = rule(prefix, "draft", goal={"event": "Order Completed", "within": "PT1H"})

    async with engine.admin() as client:
        response = await client.post(
            f"/v1/rules/{prefix}-draft/simulate",
            json={"from": (t0 - seconds(1)).isoformat(), "rule": draft},
        )
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["entered"], result["sent"], result["exited"]) == (2, 1, 1)
    assert result["converted"] == 1
    assert [a["customer"]["id"] for a in result["actions"]] == [abandoner]
    assert set(result) >= {"from", "to", "events", "customers", "truncated"}


async def test_lifecycle_model_is_validated_and_versioned(
    engine: Engine, rules: Rules, prefix: str
) -> None:
    await rules.create(
        rule(prefix, "on-loyal", trigger={"type": "stage_entered", "stage": "loyal"})
    )
    model = default_lifecycle().model_dump(mode="json")
    async with engine.admin() as client:
        current = (await client.get("/v1/lifecycle")).json()
        assert [s["name"] for s in current["stages"]][-1] == "visitor"

        last_with_criteria = {"stages": model["stages"][:-1]}
        refused = await client.put("/v1/lifecycle", json=last_with_criteria)
        assert refused.status_code == 422
        assert "must have no criteria" in refused.json()["message"]

        without_loyal = {"stages": [s for s in model["stages"] if s["name"] != "loyal"]}
        refused = await client.put("/v1/lifecycle", json=without_loyal)
        assert refused.status_code == 422
        assert f"rules.{prefix}-on-loyal.trigger.stage" in refused.json()["message"]

        stored = await client.put("/v1/lifecycle", json=model)
        assert stored.status_code == 200
        assert stored.json()["version"] > current["version"]
