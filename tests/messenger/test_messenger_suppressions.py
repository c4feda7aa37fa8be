"""Suppressions and consent, checked at send time; signed provider callbacks; erasure."""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson

from services.messenger.delivery.signing import build_headers
from shared.envelope import ErasureV1
from tests.messenger.messenger_support import (
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver, Reply
from tests.support.services import Infra, RunningService


async def test_a_suppressed_customer_gets_nothing_and_the_others_still_do(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook()
    dest = await create_destination(messenger, hook)
    unsubscribed, by_address, welcome = customer_id(), customer_id(), customer_id()
    address = f"{by_address}@Example.COM"
    async with messenger.admin() as client:
        for body in (
            {"channel": "email", "customer_id": unsubscribed, "reason": "unsubscribed"},
            {"channel": "email", "address": f"  {address.lower()} ", "reason": "bounced"},
            {"channel": "sms", "customer_id": welcome},  # another channel: no effect on email
        ):
            response = await client.post("/v1/suppressions", json=body)
            assert response.status_code == 201, response.text
        again = await client.post(
            "/v1/suppressions", json={"channel": "email", "customer_id": unsubscribed}
        )
        assert again.status_code == 200
        assert again.json()["reason"] == "unsubscribed"

    actions = [
        make_action(unsubscribed, destination=dest["id"]),
        make_action(by_address, destination=dest["id"], email=address),
        make_action(welcome, destination=dest["id"]),
    ]
    await produce(infra, *actions)

    first = await wait_delivery(messenger, actions[0].action_id, "suppressed")
    second = await wait_delivery(messenger, actions[1].action_id, "suppressed")
    await wait_delivery(messenger, actions[2].action_id, "delivered")
    assert "customer suppressed" in first["last_error"] and first["attempts"] == []
    assert "address suppressed" in second["last_error"]
    assert hook.for_action(actions[0].action_id) == []
    assert hook.for_action(actions[1].action_id) == []

    async with messenger.admin() as client:
        listed = await client.get("/v1/suppressions", params={"customer_id": unsubscribed})
        assert [s["channel"] for s in listed.json()["items"]] == ["email"]
        lifted = await client.delete(
            "/v1/suppressions", params={"channel": "email", "customer_id": unsubscribed}
        )
        assert lifted.status_code == 204
        gone = await client.delete(
            "/v1/suppressions", params={"channel": "email", "customer_id": unsubscribed}
        )
        assert gone.status_code == 404
        replay = await client.post(f"/v1/deliveries/{first['id']}/replay")
        assert replay.status_code == 202
    await wait_delivery(messenger, actions[0].action_id, "delivered")


async def test_suppression_api_validates_and_pages(messenger: RunningService) -> None:
    customers = [customer_id("page") for _ in range(3)]
    async with messenger.admin() as client:
        bad = await client.post(
            "/v1/suppressions", json={"channel": "email", "customer_id": "a", "address": "b@c"}
        )
        assert bad.status_code == 422
        ids = []
        for customer in customers:
            response = await client.post(
                "/v1/suppressions", json={"channel": "push", "customer_id": customer}
            )
            ids.append(response.json()["id"])
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"channel": "push", "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/suppressions", params=params)).json()
            seen += [s["id"] for s in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert set(ids) <= set(seen) and len(seen) == len(set(seen))
        for suppression_id in ids:
            assert (await client.delete(f"/v1/suppressions/{suppression_id}")).status_code == 204
        assert (await client.get("/v1/suppressions", params={"cursor": "%%%"})).status_code == 400


def _signed(secret: str, events: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps({"events": events})
    return body, build_headers(secret, f"msg_{uuid.uuid4().hex}", int(time.time()), body)


async def test_a_signed_bounce_suppresses_the_address_and_marks_the_delivery(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook()
    dest = await create_destination(messenger, hook)
    customer = customer_id()
    email = f"{customer}@example.com"
    action = make_action(customer, destination=dest["id"], email=email)
    await produce(infra, action)
    delivered = await wait_delivery(messenger, action.action_id, "delivered")

    events = [
        {"type": "delivered", "action_id": action.action_id},
        {"type": "bounced", "action_id": action.action_id, "detail": "mailbox unknown"},
        {"type": "delivered", "action_id": action.action_id},  # late: does not hide the bounce
        {"type": "bounced", "action_id": "act_not_ours"},
        {"type": "unsubscribed", "customer_id": f"{customer}-other"},
    ]
    body, headers = _signed(hook.secret, events)
    url = f"/v1/provider-events?destination_id={dest['id']}"
    async with messenger.client() as client:
        forged, forged_headers = _signed("whsec_" + "A" * 43 + "=", events)
        wrong = await client.post(url, content=forged, headers=forged_headers)
        assert wrong.status_code == 401
        tampered = body.replace(b"bounced", b"delivered")
        assert (await client.post(url, content=tampered, headers=headers)).status_code == 401
        unknown = await client.post(
            "/v1/provider-events?destination_id=dst_nope", content=body, headers=headers
        )
        assert unknown.status_code == 401
        stale = build_headers(hook.secret, "msg_old", int(time.time()) - 3600, body)
        assert (await client.post(url, content=body, headers=stale)).status_code == 401
        response = await client.post(url, content=body, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["accepted"] == 4
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [(3, "unknown_action")]

    async with messenger.admin() as client:
        after = (await client.get(f"/v1/deliveries/{delivered['id']}")).json()
        assert after["status"] == "delivered" and after["provider_status"] == "bounced"
        listed = await client.get("/v1/suppressions", params={"channel": "email", "address": email})
        (suppression,) = listed.json()["items"]
        assert (suppression["reason"], suppression["source"]) == ("bounced", "provider")
        assert suppression["destination_id"] == dest["id"]
        other = await client.get("/v1/suppressions", params={"customer_id": f"{customer}-other"})
        assert [s["reason"] for s in other.json()["items"]] == ["unsubscribed"]

    next_send = make_action(customer, destination=dest["id"], email=email.upper())
    await produce(infra, next_send)
    await wait_delivery(messenger, next_send.action_id, "suppressed")
    assert hook.for_action(next_send.action_id) == []


async def test_erasure_purges_payloads_and_response_bodies_and_cancels_pending_sends(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook(Reply(200), *([Reply(503, {"Retry-After": "60"})] * 2))
    dest = await create_destination(messenger, hook)
    customer = customer_id("erase")
    sent = make_action(customer, destination=dest["id"], email=f"{customer}@example.com")
    await produce(infra, sent)
    await wait_delivery(messenger, sent.action_id, "delivered")
    waiting = make_action(customer, destination=dest["id"])
    await produce(infra, waiting)
    await wait_delivery(messenger, waiting.action_id, "retrying")  # next try in 60 s

    erasure = ErasureV1(
        customer_key=customer, erasure_id=uuid.uuid4(), requested_at=sent.created_at
    )
    await produce(infra, erasure)

    cancelled = await wait_delivery(messenger, waiting.action_id, "cancelled")
    async with messenger.admin() as client:
        listed = await client.get("/v1/deliveries", params={"customer_id": customer})
        replay = await client.post(f"/v1/deliveries/{cancelled['id']}/replay")
    deliveries = listed.json()["items"]
    assert len(deliveries) == 2
    assert all(d["data"] is None and d["erased_at"] for d in deliveries)
    assert all(a["response_body"] is None for d in deliveries for a in d["attempts"])
    assert {d["status"] for d in deliveries} == {"delivered", "cancelled"}
    assert replay.status_code == 409
    assert len(hook.for_action(waiting.action_id)) == 1
