"""Destination secrets are encrypted in PostgreSQL, survive a key rotation, and a wrong key
fails deliveries with a reason instead of signing with garbage."""

from __future__ import annotations

import asyncpg

from services.messenger.destinations.secrets import SecretBox
from tests.messenger.messenger_support import (
    MessengerFactory,
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver
from tests.support.services import Infra

K1 = "rotation-test-key-one-" + "1" * 20
K2 = "rotation-test-key-two-" + "2" * 20


async def _stored(infra: Infra, destination_id: str) -> str:
    conn = await asyncpg.connect(infra.database_url)
    try:
        value: str = await conn.fetchval(
            "SELECT secret_encrypted FROM messenger.destinations WHERE id = $1", destination_id
        )
    finally:
        await conn.close()
    return value


async def test_the_stored_secret_is_encrypted_and_rotation_keeps_delivering(
    infra: Infra, receiver: Receiver, start_messenger: MessengerFactory
) -> None:
    hook = receiver.hook()
    first = await start_messenger(secret_key=K1)
    dest = await create_destination(first, hook)
    stored = await _stored(infra, dest["id"])
    assert hook.secret not in stored and not stored.startswith("whsec_")
    assert SecretBox(K1).open(stored) == hook.secret
    await first.stop()

    # Rotate: the new key, the old one still readable; the start re-encrypts.
    rotated = await start_messenger(secret_key=K2, secret_keys_old=K1)
    resealed = await _stored(infra, dest["id"])
    assert SecretBox(K2).is_current(resealed)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)
    await wait_delivery(rotated, action.action_id, "delivered")
    assert [h.verified for h in hook.for_action(action.action_id)] == [True]
    await rotated.stop()

    # The old key is gone from the settings: the secret is still read.
    after = await start_messenger(secret_key=K2)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)
    await wait_delivery(after, action.action_id, "delivered")
    assert [h.verified for h in hook.for_action(action.action_id)] == [True]


async def test_a_secret_no_key_opens_fails_its_deliveries_with_the_reason(
    receiver: Receiver, infra: Infra, start_messenger: MessengerFactory
) -> None:
    hook = receiver.hook()
    owner = await start_messenger(secret_key=K1)
    dest = await create_destination(owner, hook)
    await owner.stop()
    wrong = await start_messenger(secret_key=K2)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)
    delivery = await wait_delivery(wrong, action.action_id, "failed")
    assert "cannot be decrypted" in delivery["last_error"]
    assert hook.for_action(action.action_id) == []
    async with wrong.admin() as client:
        shown = (await client.get(f"/v1/destinations/{dest['id']}")).json()
    assert shown["secret"] == "whsec_****"
