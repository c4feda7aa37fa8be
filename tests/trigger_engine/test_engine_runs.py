"""Runs in flight: exit mid-wait, a late order cancelling a pending send, re-entry windows,
and an inactivity clock that restarts on each order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaProducer

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


def _run(customer: dict[str, Any] | None, status: str) -> dict[str, Any] | None:
    if customer is None:
        return None
    return next((r for r in customer["runs"] if r["status"] == status), None)


async def test_exit_event_mid_wait_ends_the_run_before_its_second_send(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    key = f"{prefix}-two-step"
    await rules.create(
        rule(
            prefix,
            "two-step",
            steps=[
                {"send": {"channel": "email", "template": "first"}},
                # Long enough that the exit always comes first, however slow this machine:
                # the test looks at the run and its timer, it does not wait the wait out.
                {"wait": "PT60S"},
                {"send": {"channel": "email", "template": "second"}},
            ],
            exit_when=[{"event": "Product Removed"}],
        )
    )
    shopper = f"{prefix}-shopper"
    await produce(producer, event(shopper, "Product Added", properties=MUG))
    waiting = await eventually(lambda: _active(engine, shopper), what="the run to wait")
    assert waiting["step"] == 1
    [first] = await actions(infra, prefix, count=1)
    assert first.data["template"] == "first"
    customer = await engine.customer(shopper)
    assert customer is not None
    assert [t["run_id"] for t in customer["timers"] if t["kind"] == "step"] == [waiting["run_id"]]

    await produce(producer, event(shopper, "Product Removed", properties=MUG))
    stats = await eventually(
        lambda: _stats_with_exit(engine, key), what="the run to exit on Product Removed"
    )
    assert (stats["entered"], stats["sent"], stats["exited"], stats["completed"]) == (1, 1, 1, 0)
    customer = await engine.customer(shopper)
    assert customer is not None
    assert _run(customer, "active") is None
    assert [t for t in customer["timers"] if t["kind"] == "step"] == []  # the wait is cancelled
    records = [(r["kind"], r["step"], r.get("reason")) for r in await _run_items(engine, shopper)]
    assert records == [("started", None, None), ("exited", 1, "exit_when")]


async def _stats_with_exit(engine: Engine, key: str) -> dict[str, Any] | None:
    async with engine.admin() as client:
        response = await client.get(f"/v1/rules/{key}/stats")
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats if stats["exited"] else None


async def test_late_order_inside_the_wait_cancels_the_pending_send(
    engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    key = f"{prefix}-cart"
    await rules.create(
        rule(
            prefix,
            "cart",
            # Long enough that both orders are always folded inside it, however slow this
            # machine: the test reads the runs and their timers, it does not wait it out.
            steps=[{"wait": "PT60S"}, {"send": {"channel": "email", "template": "cart"}}],
        )
    )
    late, early = f"{prefix}-late-buyer", f"{prefix}-earlier-order"
    t0 = now()
    await produce(
        producer,
        event(late, "Product Added", at=t0, properties=MUG),
        event(early, "Product Added", at=t0, properties=MUG),
    )
    for customer in (late, early):
        await eventually(
            lambda c=customer: _active(engine, c), what=f"{customer}'s run to be waiting"
        )

    # Arrives now, but happened half a second after the add: inside the wait.
    await produce(
        producer,
        event(late, "Order Completed", at=t0 + seconds(0.5), properties={"order_id": "o-1"}),
        # Happened before the cart was filled: it neither ends nor converts the run.
        event(early, "Order Completed", at=t0 - seconds(60), properties={"order_id": "o-0"}),
    )
    for customer in (late, early):
        await eventually(
            lambda c=customer: engine.customer_with_orders(c, 1), what=f"{customer}'s order"
        )

    stats = await _stats(engine, key)
    assert (stats["entered"], stats["exited"], stats["sent"]) == (2, 1, 0)
    ended = await engine.customer(late)
    assert ended is not None
    assert _run(ended, "active") is None
    assert [t for t in ended["timers"] if t["kind"] == "step"] == []  # the send is cancelled
    records = [(r["kind"], r["step"], r.get("reason")) for r in await _run_items(engine, late)]
    assert records == [("started", None, None), ("exited", 0, "exit_when")]
    waiting = await engine.customer(early)
    assert waiting is not None
    run = _run(waiting, "active")
    assert run is not None and (run["step"], run["converted"]) == (0, False)
    [timer] = [t for t in waiting["timers"] if t["kind"] == "step"]
    assert (timer["run_id"], datetime.fromisoformat(timer["due_at"])) == (
        run["run_id"],
        t0 + seconds(60),
    )  # the send is still pending


async def _stats(engine: Engine, key: str) -> dict[str, Any]:
    async with engine.admin() as client:
        response = await client.get(f"/v1/rules/{key}/stats")
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


async def _run_items(engine: Engine, customer: str) -> list[dict[str, Any]]:
    """The run records on the customer's timeline, in order."""
    async with engine.admin() as client:
        response = await client.get(f"/v1/customers/{customer}/timeline")
    assert response.status_code == 200, response.text
    return [i["data"] for i in response.json()["items"] if i["type"] == "run"]


async def _active(engine: Engine, customer: str) -> dict[str, Any] | None:
    return _run(await engine.customer(customer), "active")


async def test_reentry_window_lets_the_same_customer_in_again_only_after_it(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    await rules.create(
        rule(
            prefix,
            "instant",
            steps=[{"send": {"channel": "push", "template": "instant"}}],
            reentry="PT5S",
        )
    )
    shopper = f"{prefix}-shopper"
    t0 = now() - seconds(20)
    await produce(
        producer,
        event(shopper, "Product Added", at=t0, properties=MUG),
        event(shopper, "Product Added", at=t0 + seconds(2), properties=MUG),  # inside the window
        event(shopper, "Product Added", at=t0 + seconds(10), properties=MUG),  # after it
    )

    found = await actions(infra, prefix, count=2, settle=1.5)
    assert [a.created_at for a in found] == [t0, t0 + seconds(10)]
    assert len({a.action_id for a in found}) == 2


async def test_inactivity_clock_restarts_on_each_order(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, rules: Rules, prefix: str
) -> None:
    await rules.create(
        rule(
            prefix,
            "no-order",
            trigger={"type": "inactivity", "event": "Order Completed", "for": "PT2S"},
            steps=[{"send": {"channel": "email", "template": "we_miss_you"}}],
            exit_when=[],
            # Only a customer with both orders can enter: should the first order's clock run
            # out before a slow machine folds the second order, it enters nobody, and the
            # second order restarts the clock all the same. A clock that did not restart
            # would send at t0 + 2 s (second order folded in time) or never (folded late).
            audience=[{"path": "profile.orders", "op": "gte", "value": 2}],
        )
    )
    customer = f"{prefix}-buyer"
    t0 = now() - seconds(1)
    await produce(
        producer,
        event(customer, "Order Completed", at=t0, properties={"order_id": "o-1", "total": 10}),
        event(
            customer,
            "Order Completed",
            at=t0 + seconds(1),
            properties={"order_id": "o-2", "total": 10},
        ),
    )

    found = await actions(infra, prefix, count=1, settle=1.5)
    assert len(found) == 1
    # Two seconds after the *second* order: the first order's clock was cancelled.
    assert found[0].created_at == t0 + seconds(3)
    assert found[0].data["context"]["trigger"]["type"] == "inactivity"
