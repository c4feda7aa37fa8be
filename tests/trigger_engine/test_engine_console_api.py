"""The ops API pieces the console uses: customer search, rule validation with condition
paths, PATCH enabled, the backtest per day, and OpenAPI that documents the bodies."""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import AIOKafkaProducer

from tests.trigger_engine.engine_support import (
    Engine,
    Rules,
    event,
    eventually,
    now,
    produce,
    rule,
    seconds,
)


async def _customers(engine: Engine, **params: Any) -> dict[str, Any]:
    async with engine.admin() as client:
        response = await client.get("/v1/customers", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_customers_are_found_by_id_email_and_phone_prefix_and_listed_by_stage(
    engine: Engine, producer: AIOKafkaProducer, prefix: str
) -> None:
    ada, bob, anon = f"{prefix}-ada", f"{prefix}-bob", f"{prefix}-anon"
    phone = f"+49 {uuid.uuid4().int % 10**10:010d}"
    await produce(
        producer,
        event(ada, None, call="identify", traits={"email": f"Ada.{prefix}@Example.com"}),
        event(bob, None, call="identify", traits={"phone": phone}),
        event(anon, "Product Viewed", anonymous=True),
        event(bob, "Order Completed", properties={"order_id": "o-1", "total": 10}),
    )
    await eventually(lambda: engine.customer_with_orders(bob, 1), timeout=30)
    await eventually(lambda: engine.customer(anon), timeout=30)
    await eventually(lambda: engine.customer(ada), timeout=30)

    by_id = await _customers(engine, q=prefix)
    assert [c["id"] for c in by_id["items"]] == [ada, anon, bob]
    assert by_id["next_cursor"] is None
    by_email = await _customers(engine, q=f"ada.{prefix}@example")  # any case
    assert [c["id"] for c in by_email["items"]] == [ada]
    by_phone = await _customers(engine, q=phone[:-2])
    assert [c["id"] for c in by_phone["items"]] == [bob]
    buyers = await _customers(engine, q=prefix, stage="first_time")
    assert [(c["id"], c["orders"]) for c in buyers["items"]] == [(bob, 1)]
    nobody = await _customers(engine, q=f"{prefix}%")  # a LIKE wildcard is matched as typed
    assert nobody["items"] == []

    first = await _customers(engine, q=prefix, limit=2)
    rest = await _customers(engine, q=prefix, limit=2, cursor=first["next_cursor"])
    assert [c["id"] for c in first["items"] + rest["items"]] == [ada, anon, bob]
    assert rest["next_cursor"] is None


async def test_customers_list_refuses_a_bad_cursor(engine: Engine) -> None:
    async with engine.admin() as client:
        assert (await client.get("/v1/customers", params={"cursor": "%%%"})).status_code == 400


async def test_misspelt_condition_paths_are_a_422_naming_the_path_and_the_known_fields(
    engine: Engine, prefix: str
) -> None:
    body = rule(
        prefix,
        "typo",
        audience=[{"path": "profile.trait.email", "op": "exists"}],
        trigger={
            "type": "event",
            "event": "Product Added",
            "where": [{"path": "event.property.price", "op": "gte", "value": 20}],
        },
        exit_when=[
            {"event": "Order Completed", "where": [{"path": "event.properties.x", "op": "exists"}]}
        ],
        goal={
            "event": "Order Completed",
            "within": "P7D",
            "where": [{"path": "profile.orders.count", "op": "gt", "value": 1}],
        },
    )
    async with engine.admin() as client:
        created = await client.post("/v1/rules", json=body)
        checked = await client.post("/v1/rules/validate", json=body)
        both = await client.post("/v1/rules/validate", json={**body, "steps": []})
    assert created.status_code == 422 and checked.status_code == 422
    errors = {e["loc"]: e["message"] for e in checked.json()["errors"]}
    assert set(errors) == {"audience.1.path", "trigger.where.0.path", "goal.where.0.path"}
    assert "'profile.trait.email'" in errors["audience.1.path"]
    assert "did you mean 'profile.traits'" in errors["audience.1.path"]
    assert "known:" in errors["audience.1.path"] and "orders" in errors["audience.1.path"]
    assert "did you mean 'event.properties'" in errors["trigger.where.0.path"]
    assert "is a number" in errors["goal.where.0.path"]
    locations = {e["loc"] for e in both.json()["errors"]}
    assert {"steps", "audience.1.path"} <= locations  # structure and paths in one answer


async def test_validate_answers_the_rule_as_it_would_be_stored(engine: Engine, prefix: str) -> None:
    body = rule(prefix, "fine")
    async with engine.admin() as client:
        checked = await client.post("/v1/rules/validate", json=body)
        stored = await client.get(f"/v1/rules/{body['key']}")
    assert checked.status_code == 200
    assert checked.json()["valid"] is True and checked.json()["rule"]["holdout_percent"] == 0
    assert stored.status_code == 404  # nothing was stored


async def test_patch_switches_a_rule_off_as_a_new_version_and_again_changes_nothing(
    engine: Engine, rules: Rules, prefix: str
) -> None:
    created = await rules.create(rule(prefix, "switch"))
    key = created["key"]
    async with engine.admin() as client:
        off = await client.patch(f"/v1/rules/{key}", json={"enabled": False})
        again = await client.patch(f"/v1/rules/{key}", json={"enabled": False})
        wrong = await client.patch(f"/v1/rules/{key}", json={"enabled": False, "name": "x"})
        missing = await client.patch(f"/v1/rules/{prefix}-none", json={"enabled": True})
        versions = (await client.get(f"/v1/rules/{key}/versions")).json()
    assert off.status_code == 200 and off.json()["enabled"] is False and off.json()["version"] == 2
    assert again.json()["version"] == 2
    assert wrong.status_code == 422 and missing.status_code == 404
    assert [v["rule"]["enabled"] for v in versions["items"]] == [True, False]
    assert versions["next_cursor"] is None


async def test_backtest_counts_sends_per_day_and_customers_reached_even_when_off(
    engine: Engine, rules: Rules, producer: AIOKafkaProducer, prefix: str
) -> None:
    start = now() - seconds(3 * 86400)
    customers = [f"{prefix}-c{n}" for n in range(3)]
    await produce(
        producer,
        *(
            event(c, "Product Added", at=start + seconds(86400 * n + 60), properties={"price": 5})
            for n, c in enumerate(customers)
        ),
    )
    await eventually(lambda: engine.customer(customers[-1]), timeout=30)
    body = rule(
        prefix, "bt", enabled=False, steps=[{"send": {"channel": "email", "template": "t"}}]
    )
    await rules.create(body)
    async with engine.admin() as client:
        result = await client.post(
            f"/v1/rules/{body['key']}/simulate",
            json={"from": start.isoformat(), "to": now().isoformat(), "sample": 2},
        )
    assert result.status_code == 200, result.text
    out = result.json()
    assert out["sent"] == 3 and out["reached"] == 3
    assert [d["sent"] for d in out["sends_per_day"]] == [1, 1, 1]
    assert len(out["actions"]) == 2 and all("at" in a for a in out["actions"])


async def test_openapi_documents_typed_bodies_and_docs_work_offline(engine: Engine) -> None:
    async with engine.admin() as client:
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
        asset = await client.get("/docs-assets/swagger-ui-bundle.js")
    schemas = spec["components"]["schemas"]
    post = spec["paths"]["/v1/rules"]["post"]["requestBody"]["content"]["application/json"]
    assert post["schema"].get("$ref") == "#/components/schemas/Rule" or "trigger" in str(post)
    assert "cart-abandon" in post["examples"]
    assert "Condition" in schemas and "EventTrigger" in schemas
    policy = spec["paths"]["/v1/send-policy"]["put"]["requestBody"]["content"]["application/json"]
    assert "caps" in str(policy["schema"]) and policy["examples"]
    lifecycle = spec["paths"]["/v1/lifecycle"]["put"]["requestBody"]["content"]["application/json"]
    assert "stages" in str(lifecycle["schema"])
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text.lower() and "http" not in docs.text.split("<body>")[0].replace(
        "http-equiv", ""
    )
    assert asset.status_code == 200 and len(asset.content) > 100_000
