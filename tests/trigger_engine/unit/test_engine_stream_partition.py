"""An owned partition in memory: eviction keeps unsaved states, timers arm and come due."""

from __future__ import annotations

from datetime import timedelta

from engine_core_support import at

from services.trigger_engine.core.state import CustomerState, PendingTimer
from services.trigger_engine.stream.partition import PartitionState

GRACE = timedelta(seconds=30)


def part() -> PartitionState:
    return PartitionState(
        partition=0, generation=1, events_offset=0, handoff_offset=0, watermark=None
    )


def with_timer(key: str, due_minutes: float) -> CustomerState:
    state = CustomerState.new(key)
    state.timers["t"] = PendingTimer(timer_id="t", kind="step", due_at=at(minutes=due_minutes))
    return state


def test_eviction_drops_the_least_recently_used_clean_states_only() -> None:
    p = part()
    for key in ("a", "b", "c", "d"):
        p.put(CustomerState.new(key))
    p.changed("a", grace=GRACE)  # unsaved: must stay
    p.get("b")  # used last
    assert p.evict(2) == 2
    assert list(p.states) == ["a", "b"]


def test_a_customer_comes_due_at_its_earliest_release_and_stale_entries_are_skipped() -> None:
    p = part()
    p.put(with_timer("a", 10))
    p.changed("a", grace=GRACE)
    p.put(with_timer("b", 5))
    p.changed("b", grace=GRACE)
    p.states["a"].timers["t"].due_at = at(minutes=1)  # the timer moved earlier
    p.changed("a", grace=GRACE)
    assert p.due(at(minutes=4)) == ["a"]
    assert p.due(at(minutes=9)) == ["b"]
    assert p.due(at(hours=1)) == []  # a's old entry (minute 10) is stale


def test_a_stored_timer_is_armed_once_at_its_earliest() -> None:
    p = part()
    p.arm("a", at(minutes=3))
    p.arm("a", at(minutes=7))  # later: the earlier one stands
    assert p.due(at(minutes=5)) == ["a"]
    assert p.due(at(minutes=8)) == []
