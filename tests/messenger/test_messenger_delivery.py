"""Signed delivery against the stand-in provider: retries, Retry-After, 410, 4xx, dead letters
and replay — each scenario through Kafka clm.actions, PostgreSQL and HTTP."""

from __future__ import annotations

import time
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from clm.runtime import free_port
from shared import topics
from shared.envelope import decode_dead_letter
from tests.messenger.messenger_support import (
    MessengerFactory,
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.kafka import collect
from tests.support.receiver import Receiver, Reply
from tests.support.services import Infra, RunningService


async def test_two_503s_then_200_is_three_attempts_with_one_webhook_id(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook(503, 503, 200)
    dest = await create_destination(messenger, hook)
    action = make_action(customer_id(), destination=dest["id"], email="ann@example.com")
    await produce(infra, action)

    delivery = await wait_delivery(messenger, action.action_id, "delivered")

    hits = hook.for_action(action.action_id)
    assert [h.status for h in hits] == [503, 503, 200]
    assert all(h.verified for h in hits)
    assert {h.webhook_id for h in hits} == {action.action_id}
    stamps = [int(h.headers["webhook-timestamp"]) for h in hits]  # signed per attempt
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 10
    body = hits[-1].body
    assert body["type"] == "action.send"
    assert body["data"] == action.data
    assert body["timestamp"].endswith("Z")
    assert len({h.raw for h in hits}) == 1  # the same bytes on every attempt
    assert delivery["attempt_count"] == 3
    assert [a["status_code"] for a in delivery["attempts"]] == [503, 503, 200]
    assert [a["outcome"] for a in delivery["attempts"]] == ["retry", "retry", "delivered"]
    assert all(a["latency_ms"] >= 0 for a in delivery["attempts"])
    assert delivery["delivered_at"] is not None
    assert delivery["destination_id"] == dest["id"]


async def test_429_with_retry_after_waits_at_least_that_long(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook(Reply(429, {"Retry-After": "1"}), 200)
    dest = await create_destination(messenger, hook)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)

    await wait_delivery(messenger, action.action_id, "delivered")

    first, second = hook.for_action(action.action_id)
    assert (first.status, second.status) == (429, 200)
    # The schedule alone would retry after ~0.2 s; the receiver asked for 1 s.
    assert second.at - first.at >= 0.95


async def test_410_gone_fails_the_delivery_and_disables_the_destination(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook(410)
    dest = await create_destination(messenger, hook)
    first = make_action(customer_id(), destination=dest["id"])
    await produce(infra, first)

    failed = await wait_delivery(messenger, first.action_id, "failed")
    assert failed["last_status_code"] == 410
    assert len(hook.for_action(first.action_id)) == 1
    async with messenger.admin() as client:
        disabled = (await client.get(f"/v1/destinations/{dest['id']}")).json()
    assert disabled["enabled"] is False
    assert "410" in disabled["disabled_reason"]

    later = make_action(customer_id(), destination=dest["id"])
    await produce(infra, later)
    skipped = await wait_delivery(messenger, later.action_id, "failed")
    assert "disabled" in skipped["last_error"]
    assert skipped["attempts"] == []
    assert hook.for_action(later.action_id) == []


async def test_400_is_terminal_after_one_attempt(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook(400, 200)
    dest = await create_destination(messenger, hook)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)

    delivery = await wait_delivery(messenger, action.action_id, "failed")

    assert delivery["attempt_count"] == 1
    assert delivery["attempts"][0]["status_code"] == 400
    assert delivery["attempts"][0]["response_body"] == "ok"
    assert delivery["next_attempt_at"] is None
    assert len(hook.for_action(action.action_id)) == 1


async def test_out_of_retries_is_dead_and_a_replay_delivers_with_the_same_webhook_id(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook(500, 502, 503)
    dest = await create_destination(messenger, hook)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)

    dead = await wait_delivery(messenger, action.action_id, "dead")
    assert dead["attempt_count"] == 3
    assert "out of retries" in dead["last_error"]

    async with messenger.admin() as client:
        response = await client.post(f"/v1/deliveries/{dead['id']}/replay")
        assert response.status_code == 202, response.text
        delivered = await wait_delivery(messenger, action.action_id, "delivered")
        again = await client.post(f"/v1/deliveries/{dead['id']}/replay")
        assert again.status_code == 202  # a delivered one may be sent again on request
        await wait_delivery(messenger, action.action_id, "delivered")
        missing = await client.post("/v1/deliveries/00000000-0000-4000-8000-000000000000/replay")
        assert missing.status_code == 404

    hits = hook.for_action(action.action_id)
    assert [h.status for h in hits[:4]] == [500, 502, 503, 200]
    assert {h.webhook_id for h in hits} == {action.action_id}
    assert [a["round"] for a in delivered["attempts"]] == [1, 1, 1, 2]


async def test_replay_by_filter_requeues_only_the_matching_dead_deliveries(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    failing = receiver.hook(*([503] * 6))
    other = receiver.hook(*([503] * 3))
    dest = await create_destination(messenger, failing)
    other_dest = await create_destination(messenger, other)
    actions = [make_action(customer_id(), destination=dest["id"]) for _ in range(2)]
    bystander = make_action(customer_id(), destination=other_dest["id"])
    await produce(infra, *actions, bystander)
    for action in (*actions, bystander):
        await wait_delivery(messenger, action.action_id, "dead")

    async with messenger.admin() as client:
        response = await client.post(
            "/v1/deliveries/replay", json={"status": ["dead"], "destination_id": dest["id"]}
        )
    assert response.status_code == 202, response.text
    assert response.json() == {"replayed": 2}
    for action in actions:
        await wait_delivery(messenger, action.action_id, "delivered")
    assert len(other.for_action(bystander.action_id)) == 3


async def test_a_poison_record_on_clm_actions_is_dead_lettered_and_does_not_stall(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook()
    dest = await create_destination(messenger, hook)
    customer = customer_id()
    marker = f"poison-{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await producer.start()
    try:  # same key: same partition, poison first
        await producer.send_and_wait(
            topics.ACTIONS,
            orjson.dumps({"type": "action", "marker": marker}),
            key=customer.encode(),
        )
    finally:
        await producer.stop()
    action = make_action(customer, destination=dest["id"])
    await produce(infra, action)

    await wait_delivery(messenger, action.action_id, "delivered")
    (letter,) = await collect(
        infra.bootstrap,
        topics.DEAD_LETTERS,
        decode=decode_dead_letter,
        match=lambda d: marker in d.payload,
        count=1,
    )
    assert (letter.service, letter.origin, letter.code) == (
        "messenger",
        topics.ACTIONS,
        "invalid_action",
    )


async def test_timeouts_and_refused_connections_are_retried_until_dead(
    infra: Infra, receiver: Receiver, start_messenger: MessengerFactory
) -> None:
    # The timeout also bounds the second attempt, which must succeed even on a loaded machine;
    # the first answer comes far too late for it.
    messenger = await start_messenger(delivery_timeout_seconds=2)
    slow = receiver.hook(Reply(200, delay=6), 200)
    slow_dest = await create_destination(messenger, slow)
    closed = await create_destination(
        messenger, receiver.hook(), url=f"http://127.0.0.1:{free_port()}/nobody-listens"
    )
    timed_out = make_action(customer_id(), destination=slow_dest["id"])
    refused = make_action(customer_id(), destination=closed["id"])
    await produce(infra, timed_out, refused)

    delivered = await wait_delivery(messenger, timed_out.action_id, "delivered")
    dead = await wait_delivery(messenger, refused.action_id, "dead")

    first, second = delivered["attempts"]
    assert first["status_code"] is None and first["error"].startswith("timeout")
    assert first["outcome"] == "retry" and second["status_code"] == 200
    assert [a["error"].split(":")[0] for a in dead["attempts"]] == ["connection"] * 3
