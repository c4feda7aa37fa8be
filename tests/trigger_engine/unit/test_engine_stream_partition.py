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


def test_a_remote_floor_holds_once_the_handoff_watermark_passes_the_instant_it_was_read() -> None:
    p = part()
    p.remote_reads.extend([(at(minutes=1), at(seconds=10)), (at(minutes=2), at(seconds=70))])
    p.handoff_moved(at(seconds=30))
    assert p.remote_floor is None  # forwards sent before minute 1 may still be on their way
    p.handoff_moved(at(minutes=1, seconds=30))
    assert p.remote_floor == at(seconds=10)
    p.handoff_moved(at(minutes=5))  # both reads are covered: the newest floor holds
    assert p.remote_floor == at(seconds=70)
    assert not p.remote_reads


def test_customers_held_back_by_the_remote_floor_are_armed_again_when_it_moves() -> None:
    p = part()
    p.put(with_timer("a", 1))
    p.changed("a", grace=GRACE)
    assert p.due(at(minutes=2)) == ["a"]
    p.hold("a", grace=GRACE)
    assert p.due(at(minutes=3)) == []  # not looked at again on every tick
    p.remote_reads.append((at(minutes=2), at(minutes=2)))
    p.handoff_moved(at(minutes=3))
    assert p.due(at(minutes=3)) == ["a"]


def test_the_published_watermark_covers_both_topics() -> None:
    p = part()
    p.watermark = at(minutes=5)
    assert p.published_watermark() is None  # the hand-off partition not read yet
    p.handoff_moved(at(minutes=3))
    assert p.published_watermark() == at(minutes=3)


def test_stale_timer_entries_do_not_pile_up() -> None:
    p = part()
    p.put(with_timer("a", 1))
    for minute in range(5000):
        p.states["a"].timers["t"].due_at = at(minutes=minute)
        p.changed("a", grace=GRACE)
    assert len(p.timers) <= 2 * len(p.released) + 1001
    assert p.due(at(minutes=4998)) == []
    assert p.due(at(minutes=4999)) == ["a"]


def test_erased_or_merged_away_customers_are_not_read_back() -> None:
    p = part()
    p.links["anon"] = "user-1"
    p.tombstones.add("gone")
    assert not p.absent("anon") and not p.absent("gone")
    assert p.absent("user-2")
