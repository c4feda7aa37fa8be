"""Managed templates: CRUD, rendering into ``data.rendered``, and injection failing safely."""

from __future__ import annotations

import uuid

from tests.messenger.messenger_support import (
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver
from tests.support.services import Infra, RunningService


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_template_crud_refuses_syntax_errors_and_duplicates(
    messenger: RunningService,
) -> None:
    name = _name("welcome")
    async with messenger.admin() as client:
        created = await client.post("/v1/templates", json={"name": name, "subject": "Hi {{ x }}"})
        assert created.status_code == 201, created.text
        assert created.json()["version"] == 1
        duplicate = await client.post("/v1/templates", json={"name": name, "text": "again"})
        assert duplicate.status_code == 409
        broken = await client.post(
            "/v1/templates", json={"name": _name("broken"), "html": "{% for x in %}"}
        )
        assert broken.status_code == 422 and broken.json()["code"] == "template_syntax"
        empty = await client.post("/v1/templates", json={"name": _name("empty")})
        assert empty.status_code == 422
        replaced = await client.put(f"/v1/templates/{name}", json={"text": "Hello {{ x }}"})
        assert replaced.json()["version"] == 2 and replaced.json()["subject"] is None
        assert (await client.get(f"/v1/templates/{name}")).json()["text"] == "Hello {{ x }}"
        assert name in [t["name"] for t in (await client.get("/v1/templates")).json()["items"]]
        assert (await client.delete(f"/v1/templates/{name}")).status_code == 204
        assert (await client.get(f"/v1/templates/{name}")).status_code == 404
        assert (await client.put(f"/v1/templates/{name}", json={"text": "x"})).status_code == 404


async def test_a_managed_template_is_rendered_and_customer_data_is_never_evaluated(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    name = _name("cart")
    async with messenger.admin() as client:
        response = await client.post(
            "/v1/templates",
            json={
                "name": name,
                "subject": "{{ customer.traits.first_name }}, your cart\nis waiting",
                "text": "{% for p in context.cart.products %}{{ p.name }} {{ p.price }}"
                "{% endfor %}",
                "html": "<p>Hello {{ customer.traits.first_name }}</p>",
            },
        )
        assert response.status_code == 201, response.text
    hook = receiver.hook()
    dest = await create_destination(messenger, hook)
    hostile_name = "<b>Ann</b> {{ 7*7 }}"
    managed = make_action(
        customer_id(), destination=dest["id"], template=name, traits={"first_name": hostile_name}
    )
    passthrough = make_action(customer_id(), destination=dest["id"], template=_name("external"))
    await produce(infra, managed, passthrough)

    await wait_delivery(messenger, managed.action_id, "delivered")
    await wait_delivery(messenger, passthrough.action_id, "delivered")
    (hit,) = hook.delivered(managed.action_id)
    rendered = hit.body["data"]["rendered"]
    assert rendered["subject"] == "<b>Ann</b> {{ 7*7 }}, your cart is waiting"
    assert rendered["text"] == "Mug 12.5"
    assert rendered["html"] == "<p>Hello &lt;b&gt;Ann&lt;/b&gt; {{ 7*7 }}</p>"
    assert hit.body["data"]["template"] == name
    (plain,) = hook.delivered(passthrough.action_id)
    assert "rendered" not in plain.body["data"]
    assert plain.body["data"] == passthrough.data


async def test_template_injection_fails_the_delivery_safely(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    attacks = {
        _name("mro"): "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        _name("globals"): "{{ customer.get.__globals__ }}",
        _name("loop"): "{% for i in range(10**9) %}{% for j in range(10**9) %}x{% endfor %}"
        "{% endfor %}",
        _name("repeat"): "{{ 'x' * 10**10 }}",
    }
    hook = receiver.hook()
    dest = await create_destination(messenger, hook)
    async with messenger.admin() as client:
        for name, source in attacks.items():
            response = await client.post("/v1/templates", json={"name": name, "text": source})
            assert response.status_code == 201, response.text
    actions = [make_action(customer_id(), destination=dest["id"], template=n) for n in attacks]
    await produce(infra, *actions)

    for action in actions:
        failed = await wait_delivery(messenger, action.action_id, "failed")
        assert failed["last_error"].startswith(f"template {action.data['template']!r} failed")
        assert failed["attempts"] == []
        assert hook.for_action(action.action_id) == []
    async with messenger.client() as client:
        assert (await client.get("/healthz")).status_code == 200
