"""A run that ends early after a send cancels what the messenger has not delivered yet: one
``CancelActions`` per run, with an id derived from the run, and only when there is something
to cancel (never for a held-out run or a run that sent nothing, nor for a run that completed
with no ``exit_when``). A run that completed and then meets its ``exit_when``:
test_engine_core_cancel_completed.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from engine_core_support import T0, at, event, example, identify, of_type, rule, simulator

from services.trigger_engine.config_cache import EngineConfig
from services.trigger_engine.core import derive
from services.trigger_engine.core.effects import CancelActions
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from services.trigger_engine.core.state import decode_state, encode_state
from services.trigger_engine.stream.partition import PartitionState
from services.trigger_engine.stream.rows import outbox_kind
from services.trigger_engine.stream.unit_of_work import UnitOfWork
from shared.envelope import ActionCancelV1, Event, decode_action_topic

MUG = {"product_id": "p1", "name": "Mug", "price": 25}
#: Sends at once, then waits a day before a second send; a purchase ends it (and converts it).
TWO_SENDS_FIELDS: dict[str, Any] = {
    "key": "two-sends",
    "steps": [
        {"send": {"channel": "email", "template": "first"}},
        {"wait": "P1D"},
        {"send": {"channel": "email", "template": "second"}},
    ],
    "exit_when": [{"event": "Order Completed"}],
    "goal": {"event": "Order Completed", "within": "P7D"},
}
TWO_SENDS = rule(**TWO_SENDS_FIELDS)


def cancels(sim: Simulator) -> list[CancelActions]:
    return of_type(sim.effects, "cancel_actions")


def purchase_after_the_first_send() -> list[Event]:
    return [
        identify(at(), email="ann@example.com"),
        event("Product Added", at(minutes=1), properties=MUG),
        event("Order Completed", at(minutes=30), properties={"order_id": "o1"}),
    ]


def bought_after_the_first_send(sim: Simulator, inputs: list[Event] | None = None) -> None:
    for item in inputs or purchase_after_the_first_send():
        sim.feed(item)


def test_a_purchase_after_a_send_cancels_the_run_once_with_a_derived_id() -> None:
    sim = simulator(TWO_SENDS)
    bought_after_the_first_send(sim)
    sim.advance_to(at(days=5))

    [sent] = of_type(sim.effects, "emit_action")
    [exited] = of_type(sim.effects, "run_exited")
    [converted] = of_type(sim.effects, "converted")
    [cancel] = cancels(sim)
    assert sim.effects.index(cancel) == sim.effects.index(exited) + 1  # right after the exit
    assert (cancel.run_id, cancel.reason, cancel.at) == (sent.run_id, "exit_when", at(minutes=30))
    assert cancel.cancel_id == derive.cancel_id(sent.run_id)
    assert cancel.customer_key == sent.customer_key == "user-1"
    assert converted.run_id == sent.run_id
    # The action names its run, and the record for the messenger reads back as sent.
    assert sent.to_action().run_id == sent.run_id
    record = decode_action_topic(cancel.to_record().to_bytes())
    assert record == ActionCancelV1(
        cancel_id=cancel.cancel_id,
        run_id=sent.run_id,
        customer_key="user-1",
        rule="two-sends",
        reason="exit_when",
        ended_at=at(minutes=30),
    )


def test_a_replay_of_the_same_inputs_cancels_with_the_same_record() -> None:
    inputs = purchase_after_the_first_send()
    first, again = simulator(TWO_SENDS), simulator(TWO_SENDS)
    for sim in (first, again):
        bought_after_the_first_send(sim, inputs)
    assert cancels(first) == cancels(again) and len(cancels(first)) == 1
    assert cancels(first)[0].to_record().to_bytes() == cancels(again)[0].to_record().to_bytes()


def test_a_run_that_sent_nothing_before_it_ended_cancels_nothing() -> None:
    sim = simulator(example("cart-abandon", holdout_percent=0))
    sim.feed(identify(at(), email="ann@example.com"))
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    sim.feed(event("Order Completed", at(minutes=30), properties={"order_id": "o1"}))
    assert of_type(sim.effects, "run_exited") and not of_type(sim.effects, "emit_action")
    assert cancels(sim) == []


def test_a_completed_run_without_exit_when_cancels_nothing_when_the_customer_buys() -> None:
    sim = simulator(rule(key="one-send", steps=[{"send": {"channel": "email", "template": "t"}}]))
    sim.feed(identify(at(), email="ann@example.com"))
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    sim.feed(event("Order Completed", at(minutes=30), properties={"order_id": "o1"}))
    assert of_type(sim.effects, "emit_action") and of_type(sim.effects, "run_completed")
    assert cancels(sim) == []


def test_a_held_out_run_cancels_nothing() -> None:
    sim = simulator(rule(**TWO_SENDS_FIELDS, holdout_percent=100))
    bought_after_the_first_send(sim)
    assert of_type(sim.effects, "held_out") and of_type(sim.effects, "run_exited")
    assert cancels(sim) == []


def test_leaving_the_audience_after_a_send_cancels_with_that_reason() -> None:
    gold = rule(
        key="gold",
        audience=[{"path": "profile.traits.plan", "op": "eq", "value": "gold"}],
        steps=[
            {"send": {"channel": "email", "template": "first"}},
            {"wait": "PT1H"},
            {"send": {"channel": "email", "template": "second"}},
        ],
    )
    sim = simulator(gold)
    sim.feed(identify(at(), email="ann@example.com", plan="gold"))
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    sim.feed(identify(at(minutes=10), email="ann@example.com", plan="basic"))
    sim.advance_to(at(hours=3))
    [sent] = of_type(sim.effects, "emit_action")
    [cancel] = cancels(sim)
    assert (cancel.run_id, cancel.reason, cancel.at) == (sent.run_id, "audience", at(minutes=61))


def test_the_unit_of_work_flushes_the_cancel_after_the_actions_it_cancels() -> None:
    config = EngineConfig(
        rules=RuleSet.of([TWO_SENDS]), lifecycle=default_lifecycle(), lifecycle_version=0
    )
    unit = UnitOfWork(config=config, now=at(hours=1), grace=timedelta(seconds=30), partitions=1)
    part = PartitionState(
        partition=0, generation=1, events_offset=0, handoff_offset=0, watermark=T0
    )
    for offset, item in enumerate(purchase_after_the_first_send()):
        unit.event(part, item, item.to_bytes(), offset)

    action, cancel = unit.actions
    assert [row[3] for row in unit.actions] == ["action", "cancel"]
    assert [outbox_kind(row[0]) for row in unit.actions] == ["action", "cancel"]
    assert cancel[0].startswith("cancel_") and cancel[1] == "user-1" and cancel[2] == 0
    record = decode_action_topic(cancel[4].encode())
    assert isinstance(record, ActionCancelV1)
    assert record.cancel_id == cancel[0] and record.run_id == _run_of(action[4])
    assert unit.action_rules == ["two-sends"]  # a cancel is not counted as an action sent


def _run_of(payload: str) -> str | None:
    record = decode_action_topic(payload.encode())
    assert not isinstance(record, ActionCancelV1)
    return getattr(record, "run_id", None)


def test_a_state_stored_before_runs_recorded_their_sends_cancels_nothing() -> None:
    """A run of an older state decodes with ``emitted = False``: its exit sends no cancel
    (there is no knowing what it sent), it ends as before."""
    sim = simulator(TWO_SENDS)
    sim.feed(identify(at(), email="ann@example.com"))
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    state = sim.states["user-1"]
    [run] = state.runs.values()
    assert run.emitted is True
    stored = msgspec.msgpack.decode(encode_state(state))
    for raw in stored["runs"].values():
        del raw["emitted"]
    sim.states["user-1"] = decode_state(msgspec.msgpack.encode(stored))
    sim.feed(event("Order Completed", at(minutes=30), properties={"order_id": "o1"}))
    assert of_type(sim.effects, "run_exited") and cancels(sim) == []
