"""The watermark maths: when a timer is released, what records and caught-up checks say."""

from __future__ import annotations

from datetime import timedelta

from services.trigger_engine.core.engine import step
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState
from services.trigger_engine.partitions.watermark import caught_up, from_records, release_at
from tests.trigger_engine.unit.engine_core_support import T0, at, event, rule

GRACE = timedelta(seconds=30)


def test_a_timer_set_on_time_is_released_at_its_due_time() -> None:
    assert release_at(at(hours=1), at(), grace=GRACE) == at(hours=1)
    assert release_at(at(hours=1), None, grace=GRACE) == at(hours=1)


def test_a_timer_already_due_when_its_trigger_arrived_waits_the_grace_after_arrival() -> None:
    arrived = at(hours=5)  # a phone that queued its events offline sends them at once
    assert release_at(at(hours=1), arrived, grace=GRACE) == arrived + GRACE
    assert release_at(arrived, arrived, grace=GRACE) == arrived + GRACE  # due on arrival


def test_timers_set_by_a_timer_are_never_late() -> None:
    # Firing the first wait of a run sets the next: no late burst can be behind it.
    assert release_at(at(hours=1), None, grace=GRACE) == at(hours=1)


def test_records_move_each_partition_to_their_newest_time_less_the_lateness() -> None:
    ms = int(T0.timestamp() * 1000)
    marks = from_records(
        [("t", 0, ms), ("t", 0, ms + 5000), ("t", 1, ms + 1000), ("t", 2, -1), ("u", 0, ms)],
        lateness=timedelta(seconds=1),
    )
    assert marks == {
        ("t", 0): at(seconds=4),
        ("t", 1): at(seconds=0),
        ("u", 0): at(seconds=-1),
    }  # a record without a timestamp says nothing about its partition


def test_caught_up_needs_both_the_end_offset_and_the_fetch_high_watermark() -> None:
    assert caught_up(10, 10, 10)
    assert caught_up(11, 10, 11)
    assert not caught_up(9, 10, 10)
    # The embedded broker's end offset can lag one producer batch: the fetch says more.
    assert not caught_up(10, 10, 12)
    assert not caught_up(10, 10, None)  # no fetch response yet: nothing is known


def test_a_late_event_marks_the_timers_it_sets_with_its_arrival() -> None:
    cart = rule()
    added = event(
        "Product Added", at(), properties={"product_id": "p1", "price": 30}, received=at(hours=3)
    )
    result = step(
        CustomerState.new("user-1"),
        added,
        rules=RuleSet.of([cart]),
        lifecycle=default_lifecycle(),
        now=at(hours=3),
    )
    timers = [e for e in result.effects if e.type == "set_timer"]
    assert timers and all(t.arrived_at == at(hours=3) for t in timers)
    assert {t.arrived_at for t in result.state.timers.values()} == {at(hours=3)}
