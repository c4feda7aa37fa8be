"""A run that completed at a send is over for the engine, but the messenger may still hold that
send (queued, or between retries): an ``exit_when`` event that comes later cancels it, once,
with the id an exit would have given. Kept per customer in ``completed_runs``: only for runs
that sent, of rules with ``exit_when``, for a bounded time and number."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec
from engine_core_support import T0, at, event, example, identify, of_type, rule, simulator

from services.trigger_engine.config_cache import EngineConfig
from services.trigger_engine.core import derive
from services.trigger_engine.core.effects import CancelActions, EmitAction
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.merging import merge_states
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from services.trigger_engine.core.state import (
    COMPLETED_RUN_HORIZON,
    COMPLETED_RUNS_KEPT,
    decode_state,
    encode_state,
)
from services.trigger_engine.stream.partition import PartitionState
from services.trigger_engine.stream.unit_of_work import UnitOfWork
from shared.envelope import ActionCancelV1, Event, decode_action_topic

MUG = {"product_id": "p1", "name": "Mug", "sku": "mug", "price": 25}
#: The cart-abandon play cut to its core: wait, then send (the run completes at the send).
WAIT_SEND_FIELDS: dict[str, Any] = {
    "key": "cart-reminder",
    "steps": [{"wait": "PT1H"}, {"send": {"channel": "email", "template": "reminder"}}],
    "exit_when": [{"event": "Order Completed"}],
    "reentry": "PT0S",
}
WAIT_SEND = rule(**WAIT_SEND_FIELDS)
#: When the run of a cart filled at one minute sends (and completes).
SENT_AT = at(minutes=61)


def cancels(sim: Simulator) -> list[CancelActions]:
    return of_type(sim.effects, "cancel_actions")


def sent_and_completed(sim: Simulator) -> EmitAction:
    sim.feed(identify(at(), email="ann@example.com"))
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    sim.advance_to(SENT_AT)
    [sent] = of_type(sim.effects, "emit_action")
    [completed] = of_type(sim.effects, "run_completed")
    assert completed.run_id == sent.run_id and not sim.states["user-1"].runs  # no goal: pruned
    return sent


def purchase(when: datetime, *, received: datetime | None = None, **properties: Any) -> Event:
    props = {"order_id": "o1", **properties}
    return event("Order Completed", when, properties=props, received=received)


def test_a_purchase_after_the_last_send_cancels_the_completed_run_once() -> None:
    sim = simulator(WAIT_SEND)
    sent = sent_and_completed(sim)
    [kept] = sim.states["user-1"].completed_runs
    assert (kept.run_id, kept.rule_key, kept.rule_version) == (sent.run_id, "cart-reminder", 1)
    assert (kept.started_at, kept.completed_at) == (at(minutes=1), SENT_AT)

    sim.feed(purchase(at(hours=3)))
    [cancel] = cancels(sim)
    assert cancel.cancel_id == derive.cancel_id(sent.run_id)  # the id an exit would give
    assert (cancel.run_id, cancel.rule, cancel.reason, cancel.at) == (
        sent.run_id,
        "cart-reminder",
        "exit_when",
        at(hours=3),
    )
    assert cancel.customer_key == "user-1" and cancel.holdout is False
    assert of_type(sim.effects, "run_exited") == []  # the run completed: no exit record
    assert decode_action_topic(cancel.to_record().to_bytes()) == cancel.to_record()
    assert sim.states["user-1"].completed_runs == []

    sim.feed(purchase(at(hours=4)))  # one run, one cancellation
    assert len(cancels(sim)) == 1


def test_the_shipped_cart_abandon_play_cancels_its_last_send_on_a_later_purchase() -> None:
    sim = simulator(example("cart-abandon", holdout_percent=0))
    sim.feed(identify(at(), email="ann@example.com"))
    sim.feed(event("Product Added", at(minutes=1), properties=MUG))
    sim.advance_to(at(days=2))
    reminder, discount = of_type(sim.effects, "emit_action")
    assert of_type(sim.effects, "run_completed") and cancels(sim) == []

    sim.feed(purchase(at(days=2, hours=1)))
    [cancel] = cancels(sim)
    assert cancel.run_id == reminder.run_id == discount.run_id
    assert cancel.cancel_id == derive.cancel_id(discount.run_id)


def test_a_replay_of_the_same_inputs_cancels_with_the_same_record() -> None:
    inputs = [
        identify(at(), email="ann@example.com"),
        event("Product Added", at(minutes=1), properties=MUG),
        purchase(at(hours=3)),
    ]
    first, again = simulator(WAIT_SEND), simulator(WAIT_SEND)
    for sim in (first, again):
        for item in inputs:
            sim.feed(item)  # the send (at one hour and one minute) fires on the way
    [one], [other] = cancels(first), cancels(again)
    assert one == other and one.cancel_id == derive.cancel_id(one.run_id)
    assert one.to_record().to_bytes() == other.to_record().to_bytes()


def test_only_an_event_that_would_have_ended_the_run_cancels_it() -> None:
    """The exit test of an active run: ``where`` must hold, the event must not be older than
    the run's start, and the trigger itself never counts."""
    sku_only = rule(
        **{
            **WAIT_SEND_FIELDS,
            "exit_when": [
                {
                    "event": "Order Completed",
                    "where": [{"path": "event.properties.sku", "op": "eq", "value": "mug"}],
                }
            ],
        }
    )
    sim = simulator(sku_only)
    sent = sent_and_completed(sim)
    sim.feed(purchase(at(hours=2), sku="tea"))  # where does not hold
    sim.feed(purchase(at(seconds=30), sku="mug", received=at(hours=2)))  # before the start
    assert cancels(sim) == [] and len(sim.states["user-1"].completed_runs) == 1

    sim.feed(purchase(at(hours=3), sku="mug"))
    [cancel] = cancels(sim)
    assert cancel.run_id == sent.run_id


def test_a_late_purchase_made_before_the_send_still_cancels_it() -> None:
    """Bought during the wait, but the order arrives after the send: as for an active run,
    event time decides, so the reminder still queued is cancelled."""
    sim = simulator(WAIT_SEND)
    sent = sent_and_completed(sim)
    sim.feed(purchase(at(minutes=30), received=at(hours=2)))
    [cancel] = cancels(sim)
    assert (cancel.run_id, cancel.at) == (sent.run_id, at(minutes=30))


def test_no_record_is_kept_without_exit_when_or_without_a_send() -> None:
    no_exit = rule(
        key="no-exit", steps=[{"wait": "PT1H"}, {"send": {"channel": "email", "template": "t"}}]
    )
    held_out = rule(**WAIT_SEND_FIELDS, holdout_percent=100)
    for kept_nothing in (no_exit, held_out):
        sim = simulator(kept_nothing)
        sim.feed(identify(at(), email="ann@example.com"))
        sim.feed(event("Product Added", at(minutes=1), properties=MUG))
        sim.advance_to(SENT_AT)
        assert of_type(sim.effects, "run_completed")
        assert sim.states["user-1"].completed_runs == []
        sim.feed(purchase(at(hours=3)))
        assert cancels(sim) == []


def test_a_purchase_within_the_horizon_cancels_and_one_past_it_does_not() -> None:
    within = simulator(WAIT_SEND)
    sent = sent_and_completed(within)
    within.feed(purchase(SENT_AT + COMPLETED_RUN_HORIZON))
    assert [c.run_id for c in cancels(within)] == [sent.run_id]

    past = simulator(WAIT_SEND)
    sent_and_completed(past)
    past.feed(purchase(SENT_AT + COMPLETED_RUN_HORIZON + timedelta(seconds=1)))
    assert cancels(past) == [] and past.states["user-1"].completed_runs == []


def test_records_past_the_horizon_are_pruned_when_the_state_is_touched() -> None:
    sim = simulator(WAIT_SEND)
    sent_and_completed(sim)
    sim.feed(identify(SENT_AT + COMPLETED_RUN_HORIZON, email="ann@example.com"))
    assert len(sim.states["user-1"].completed_runs) == 1  # not past it yet
    sim.feed(identify(SENT_AT + COMPLETED_RUN_HORIZON + timedelta(minutes=1), plan="gold"))
    assert sim.states["user-1"].completed_runs == []


def test_at_most_the_newest_few_completed_runs_are_kept() -> None:
    send_now = rule(
        **{**WAIT_SEND_FIELDS, "steps": [{"send": {"channel": "email", "template": "t"}}]}
    )
    sim = simulator(send_now)
    sim.feed(identify(at(), email="ann@example.com"))
    for minute in range(1, COMPLETED_RUNS_KEPT + 3):
        sim.feed(event("Product Added", at(minutes=minute), properties=MUG))
    sent = [action.run_id for action in of_type(sim.effects, "emit_action")]
    assert len(sent) == COMPLETED_RUNS_KEPT + 2
    kept = [done.run_id for done in sim.states["user-1"].completed_runs]
    assert kept == sent[-COMPLETED_RUNS_KEPT:]

    sim.feed(purchase(at(hours=1)))
    assert [c.run_id for c in cancels(sim)] == kept
    assert len({c.cancel_id for c in cancels(sim)}) == COMPLETED_RUNS_KEPT


def test_a_completed_run_of_the_anonymous_shopper_is_cancelled_after_the_merge() -> None:
    sim = simulator(WAIT_SEND)
    sim.feed(
        event("Product Added", at(minutes=1), customer="anon-1", anonymous=True, properties=MUG)
    )
    sim.advance_to(SENT_AT)
    [sent] = of_type(sim.effects, "emit_action")
    anonymous = sim.states["anon-1"]
    assert len(anonymous.completed_runs) == 1
    sim.feed(identify(at(hours=2), email="ann@example.com"))

    merged, effects = merge_states(
        sim.states["user-1"], anonymous, rules=sim.rules, lifecycle=sim.lifecycle, now=at(hours=2)
    )
    assert of_type(effects, "cancel_actions") == []
    assert [done.run_id for done in merged.completed_runs] == [sent.run_id]
    sim.states["user-1"] = merged
    sim.feed(purchase(at(hours=3)))
    [cancel] = cancels(sim)
    assert (cancel.run_id, cancel.customer_key) == (sent.run_id, "user-1")


def test_a_state_stored_before_completed_runs_were_kept_decodes_with_none() -> None:
    sim = simulator(WAIT_SEND)
    sent_and_completed(sim)
    stored = msgspec.msgpack.decode(encode_state(sim.states["user-1"]))
    assert len(stored.pop("completed_runs")) == 1
    old = decode_state(msgspec.msgpack.encode(stored))
    assert old.completed_runs == []
    assert decode_state(encode_state(sim.states["user-1"])) == sim.states["user-1"]
    sim.states["user-1"] = old
    sim.feed(purchase(at(hours=3)))  # nothing is known of its sends: nothing to cancel
    assert cancels(sim) == []


def test_the_unit_of_work_books_the_cancel_of_a_completed_run() -> None:
    send_now = rule(
        **{**WAIT_SEND_FIELDS, "steps": [{"send": {"channel": "email", "template": "t"}}]}
    )
    config = EngineConfig(
        rules=RuleSet.of([send_now]), lifecycle=default_lifecycle(), lifecycle_version=0
    )
    unit = UnitOfWork(config=config, now=at(hours=1), grace=timedelta(seconds=30), partitions=1)
    part = PartitionState(
        partition=0, generation=1, events_offset=0, handoff_offset=0, watermark=T0
    )
    inputs = [
        identify(at(), email="ann@example.com"),
        event("Product Added", at(minutes=1), properties=MUG),
        purchase(at(minutes=30)),
    ]
    for offset, item in enumerate(inputs):
        unit.event(part, item, item.to_bytes(), offset)

    action, cancel = unit.actions
    assert [row[3] for row in unit.actions] == ["action", "cancel"]
    record = decode_action_topic(cancel[4].encode())
    assert isinstance(record, ActionCancelV1)
    sent = decode_action_topic(action[4].encode())
    assert not isinstance(sent, ActionCancelV1)
    assert (record.cancel_id, record.run_id) == (cancel[0], sent.run_id)
    assert record.cancel_id == derive.cancel_id(str(sent.run_id))
