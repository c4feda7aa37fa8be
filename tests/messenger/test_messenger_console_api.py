"""The messenger pieces the console uses: PATCH enabled, a signed test send, template
previews for a sample or a real customer, and lists in one envelope."""

from __future__ import annotations

from typing import Any

from standardwebhooks import Webhook

from tests.messenger.messenger_support import (
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver
from tests.support.services import Infra, RunningService


async def test_patch_disables_and_reenables_a_destination(
    messenger: RunningService, receiver: Receiver
) -> None:
    created = await create_destination(messenger, receiver.hook())
    async with messenger.admin() as client:
        off = await client.patch(f"/v1/destinations/{created['id']}", json={"enabled": False})
        on = await client.patch(f"/v1/destinations/{created['id']}", json={"enabled": True})
        extra = await client.patch(f"/v1/destinations/{created['id']}", json={"url": "x"})
        missing = await client.patch("/v1/destinations/dst_none", json={"enabled": False})
        await client.delete(f"/v1/destinations/{created['id']}")
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert on.json()["enabled"] is True and on.json()["url"] == created["url"]
    assert extra.status_code == 422 and missing.status_code == 404


async def test_test_send_is_signed_and_reports_the_receivers_status(
    messenger: RunningService, receiver: Receiver
) -> None:
    hook = receiver.hook(200, 503)
    created = await create_destination(messenger, hook, enabled=False)
    async with messenger.admin() as client:
        ok = await client.post(f"/v1/destinations/{created['id']}/test")
        failing = await client.post(f"/v1/destinations/{created['id']}/test")
        missing = await client.post("/v1/destinations/dst_none/test")
        await client.delete(f"/v1/destinations/{created['id']}")
    assert ok.status_code == 200 and ok.json()["delivered"] is True
    assert ok.json()["status_code"] == 200 and ok.json()["error"] is None
    assert failing.json()["delivered"] is False and failing.json()["status_code"] == 503
    assert missing.status_code == 404
    first = hook.hits[0]
    assert first.verified and first.webhook_id == ok.json()["webhook_id"]
    assert first.body["type"] == "destination.test"
    Webhook(hook.secret).verify(first.raw, first.headers)


async def test_test_send_to_nobody_reports_why(messenger: RunningService) -> None:
    async with messenger.admin() as client:
        created = await client.post(
            "/v1/destinations",
            json={"channel": "webhook", "url": "http://127.0.0.1:9/nothing", "default": False},
        )
        result = await client.post(f"/v1/destinations/{created.json()['id']}/test")
        await client.delete(f"/v1/destinations/{created.json()['id']}")
    assert result.json()["delivered"] is False and result.json()["status_code"] is None
    assert "connection" in result.json()["error"]


async def _template(client: Any, name: str, **parts: str) -> None:
    response = await client.post("/v1/templates", json={"name": name, **parts})
    assert response.status_code == 201, response.text


async def test_preview_renders_for_the_sample_a_real_customer_or_given_data(
    infra: Infra, messenger: RunningService, receiver: Receiver
) -> None:
    hook = receiver.hook()
    destination = await create_destination(messenger, hook)
    customer = customer_id("prev")
    action = make_action(customer, destination=destination["id"], traits={"first_name": "Grace"})
    await produce(infra, action)
    await wait_delivery(messenger, action.action_id, "delivered")
    name = f"preview_{customer}"
    async with messenger.admin() as client:
        await _template(
            client, name, subject="Hi {{ customer.traits.first_name }}", html="<b>{{ rule }}</b>"
        )
        sample = await client.post(f"/v1/templates/{name}/preview")
        real = await client.post(f"/v1/templates/{name}/preview", json={"customer_id": customer})
        given = await client.post(
            f"/v1/templates/{name}/preview",
            json={"data": {"rule": "r", "customer": {"traits": {"first_name": "Lin"}}}},
        )
        nobody = await client.post(f"/v1/templates/{name}/preview", json={"customer_id": "none"})
        unknown = await client.post("/v1/templates/no-such-template/preview")
        await client.delete(f"/v1/templates/{name}")
        await client.delete(f"/v1/destinations/{destination['id']}")
    assert sample.status_code == 200 and sample.json()["subject"] == "Hi Ada"
    assert sample.json()["source"] == "sample" and sample.json()["html"] == "<b>cart-abandon</b>"
    assert real.json()["subject"] == "Hi Grace" and real.json()["source"] == "customer"
    assert given.json()["subject"] == "Hi Lin" and given.json()["html"] == "<b>r</b>"
    assert nobody.status_code == 404 and "sample customer" in nobody.json()["message"]
    assert unknown.status_code == 404


async def test_preview_that_cannot_render_is_a_422_naming_the_part(
    messenger: RunningService,
) -> None:
    name = f"broken_{customer_id('t')}"
    async with messenger.admin() as client:
        await _template(client, name, text="{{ customer.nickname.first }}")
        result = await client.post(f"/v1/templates/{name}/preview")
        listed = await client.get("/v1/templates")
        await client.delete(f"/v1/templates/{name}")
    assert result.status_code == 422
    assert result.json()["code"] == "template_undefined" and result.json()["message"].startswith(
        "text:"
    )
    assert set(listed.json()) == {"items", "next_cursor"}
