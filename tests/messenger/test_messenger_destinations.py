"""The destinations API: secrets shown once then masked, one default per channel, routing by
default, validation and auth; plus OpenAPI and metrics of the service."""

from __future__ import annotations

from typing import Any

from services.messenger.delivery.signing import mask_secret
from tests.messenger.messenger_support import (
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver, eventually
from tests.support.services import Infra, RunningService


async def test_secret_is_shown_once_then_masked_and_kept_across_updates(
    receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook()
    async with messenger.admin() as client:
        created = await client.post(
            "/v1/destinations",
            json={"channel": "sms", "url": hook.url, "default": False, "name": "twilio relay"},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        secret = body["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40
        assert body["max_concurrency"] == 10 and body["rate_limit_per_second"] == 50
        fetched = (await client.get(f"/v1/destinations/{body['id']}")).json()
        assert fetched["secret"] == mask_secret(secret) and secret not in str(fetched)
        listed = (await client.get("/v1/destinations", params={"channel": "sms"})).json()["items"]
        assert body["id"] in [d["id"] for d in listed]
        assert all(d["secret"].startswith("whsec_****") for d in listed)

        updated = await client.put(
            f"/v1/destinations/{body['id']}",
            json={"channel": "sms", "url": hook.url, "rate_limit_per_second": 5, "enabled": False},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["secret"] == mask_secret(secret)
        assert updated.json()["enabled"] is False and updated.json()["default"] is False

        assert (await client.delete(f"/v1/destinations/{body['id']}")).status_code == 204
        assert (await client.get(f"/v1/destinations/{body['id']}")).status_code == 404
        assert (await client.delete(f"/v1/destinations/{body['id']}")).status_code == 404


async def test_invalid_destinations_and_missing_tokens_are_refused(
    receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook()
    bad_bodies: list[dict[str, Any]] = [
        {"channel": "email", "url": hook.url, "secret": "not-a-secret"},
        {"channel": "email", "url": hook.url, "secret": "whsec_c2hvcnQ="},  # too short
        {"channel": "fax", "url": hook.url},
        {"channel": "email", "url": hook.url, "rate_limit_per_second": 0},
        {"channel": "email"},
        {"channel": "email", "url": hook.url, "unknown": 1},
    ]
    async with messenger.admin() as client:
        for body in bad_bodies:
            response = await client.post("/v1/destinations", json=body)
            assert response.status_code == 422, (body, response.text)
            assert "not-a-secret" not in response.text
    async with messenger.client() as client:
        assert (await client.get("/v1/destinations")).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.get("/v1/deliveries", headers=wrong)).status_code == 401


async def test_one_default_per_channel_and_actions_without_destination_use_it(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    old_hook, new_hook, other_hook = receiver.hook(), receiver.hook(), receiver.hook()
    old = await create_destination(messenger, old_hook, channel="push", default=True)
    new = await create_destination(messenger, new_hook, channel="push", default=True)
    other = await create_destination(messenger, other_hook, channel="push", default=None)
    assert (new["default"], other["default"]) == (True, False)
    async with messenger.admin() as client:
        old_now = (await client.get(f"/v1/destinations/{old['id']}")).json()
        defaults = [
            d["id"]
            for d in (await client.get("/v1/destinations", params={"channel": "push"})).json()[
                "items"
            ]
            if d["default"]
        ]
    assert old_now["default"] is False
    assert defaults == [new["id"]]

    action = make_action(customer_id(), channel="push")
    await produce(infra, action)
    delivery = await wait_delivery(messenger, action.action_id, "delivered")

    assert delivery["destination_id"] == new["id"]
    assert len(new_hook.delivered(action.action_id)) == 1
    assert old_hook.for_action(action.action_id) == other_hook.for_action(action.action_id) == []


async def test_openapi_documents_every_route_and_metrics_are_exposed(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook(503)
    dest = await create_destination(messenger, hook)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)
    await wait_delivery(messenger, action.action_id, "delivered")

    async with messenger.client() as client:
        spec = (await client.get("/openapi.json")).json()
        for path, methods in spec["paths"].items():
            for method, operation in methods.items():
                assert operation.get("summary"), f"{method.upper()} {path} has no summary"
        assert {
            "/v1/destinations",
            "/v1/deliveries",
            "/v1/deliveries/{delivery_id}/replay",
            "/v1/deliveries/replay",
            "/v1/suppressions",
            "/v1/provider-events",
            "/v1/templates",
        } <= set(spec["paths"])

        async def scraped() -> str | None:
            text = (await client.get("/metrics")).text
            wanted = f'clm_messenger_destination_error_ratio{{destination="{dest["id"]}"}}'
            return text if wanted in text else None

        metrics = await eventually(scraped)
    for name in (
        "clm_messenger_deliveries{",
        "clm_messenger_retry_backlog",
        "clm_messenger_dead",
        "clm_messenger_attempt_seconds_bucket",
        f'clm_messenger_attempts_total{{destination="{dest["id"]}",outcome="retry"}}',
        f'clm_messenger_attempts_total{{destination="{dest["id"]}",outcome="delivered"}}',
    ):
        assert name in metrics, name
