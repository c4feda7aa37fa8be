"""Fairness: a slow provider uses only its own concurrency; rate limits space sends out."""

from __future__ import annotations

import itertools

from tests.messenger.messenger_support import (
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver, Reply
from tests.support.services import Infra, RunningService


async def test_a_slow_provider_does_not_delay_the_others(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    # 3 s per answer: the slow queue takes over 6 s to reach its third send, far longer than
    # the fast delivery takes to be seen even on a loaded machine.
    slow_hook = receiver.hook(*[Reply(200, delay=3)] * 3)
    fast_hook = receiver.hook()
    slow = await create_destination(messenger, slow_hook, max_concurrency=1)
    fast = await create_destination(messenger, fast_hook)
    slow_actions = [make_action(customer_id(), destination=slow["id"]) for _ in range(3)]
    fast_action = make_action(customer_id(), destination=fast["id"])
    await produce(infra, *slow_actions, fast_action)

    await wait_delivery(messenger, fast_action.action_id, "delivered")
    assert len(slow_hook.hits) <= 2  # the slow one is still working through its queue

    for action in slow_actions:
        await wait_delivery(messenger, action.action_id, "delivered")
    arrivals = sorted(h.at for h in slow_hook.hits)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 2.9 for gap in gaps), gaps  # one at a time: max_concurrency=1


async def test_the_rate_limit_spaces_sends_to_a_destination(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    hook = receiver.hook()
    dest = await create_destination(messenger, hook, rate_limit_per_second=4)
    actions = [make_action(customer_id(), destination=dest["id"]) for _ in range(10)]
    await produce(infra, *actions)

    for action in actions:
        await wait_delivery(messenger, action.action_id, "delivered")

    arrivals = sorted(h.at for h in hook.hits)
    assert len(arrivals) == 10
    # A burst of 4, then 4 per second: the last of 10 comes >= 1.5 s after the first.
    assert arrivals[-1] - arrivals[0] >= 1.3
    for i in range(len(arrivals)):
        in_window = [t for t in arrivals if arrivals[i] <= t < arrivals[i] + 1.0]
        assert len(in_window) <= 4 + 4 + 1
