"""A partition owner's unit of work: identities, hand-offs and erasures, as pure data."""

from __future__ import annotations

import uuid
from datetime import timedelta

from engine_core_support import T0, at, event, rule

from services.trigger_engine.config_cache import EngineConfig
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState, encode_state
from services.trigger_engine.stream.handoff import (
    Forward,
    MergeRequest,
    StateTransfer,
    partition_of,
)
from services.trigger_engine.stream.partition import PartitionState
from services.trigger_engine.stream.unit_of_work import UnitOfWork

CONFIG = EngineConfig(
    rules=RuleSet.of([rule()]), lifecycle=default_lifecycle(), lifecycle_version=0
)


def unit(partitions: int = 1, *, minutes: float = 0) -> UnitOfWork:
    return UnitOfWork(
        config=CONFIG, now=at(minutes=minutes), grace=timedelta(seconds=30), partitions=partitions
    )


def part(partition: int = 0) -> PartitionState:
    return PartitionState(
        partition=partition, generation=1, events_offset=0, handoff_offset=0, watermark=T0
    )


def keys_on(partition: int, partitions: int, count: int) -> list[str]:
    """``count`` customer keys on ``partition`` (of ``partitions``)."""
    found = [f"k{n}" for n in range(1000) if partition_of(f"k{n}", partitions) == partition]
    return found[:count]


def test_a_replayed_merge_is_the_same_merge_however_late_it_runs() -> None:
    cart = event("Product Added", at(minutes=1), customer="anon-1", anonymous=True)
    who = event(None, at(minutes=2), customer="user-1", call="identify", anonymous_id="anon-1")
    first, again = part(), part()
    for u, p in ((unit(minutes=3), first), (unit(minutes=90), again)):  # replayed long after
        for offset, record in enumerate((cart, who)):
            u.event(p, record, record.to_bytes(), offset)
    assert first.links == again.links == {"anon-1": "user-1"}
    assert encode_state(first.states["user-1"]) == encode_state(again.states["user-1"])
    assert first.pending.runs == again.pending.runs
    assert first.pending.transitions == again.pending.transitions


def test_an_identify_for_an_anonymous_id_of_another_partition_asks_its_owner() -> None:
    [known] = keys_on(0, 2, 1)
    [anonymous] = keys_on(1, 2, 1)
    u, p = unit(2), part(0)
    who = event(None, at(minutes=1), customer=known, call="identify", anonymous_id=anonymous)
    u.event(p, who, who.to_bytes(), 0)
    assert u.handoffs == [(anonymous, MergeRequest(anonymous, known, who.received_at, False))]


def test_a_forwarded_event_is_identified_by_the_owner_that_folds_it() -> None:
    [target, other] = keys_on(0, 2, 2)
    [remote] = keys_on(1, 2, 1)
    u, p = unit(2), part(0)
    who = event(None, at(minutes=1), customer=target, call="identify", anonymous_id=remote)
    u.handoff(p, Forward(target, who, 1, 7))
    assert [key for key, _ in u.handoffs] == [remote]  # the remote id is asked to merge
    local = event(None, at(minutes=2), customer=target, call="identify", anonymous_id=other)
    p.put(CustomerState.new(other))
    u.handoff(p, Forward(target, local, 1, 8))
    assert p.links[other] == target and other not in p.states  # merged here


def test_a_state_for_a_customer_merged_on_follows_it() -> None:
    [target] = keys_on(0, 2, 1)
    [onward] = keys_on(1, 2, 1)
    u, p = unit(2), part(0)
    p.links[target] = onward
    state = CustomerState.new("anon-9")
    u.handoff(p, StateTransfer("anon-9", target, state, at(minutes=1)))
    assert u.handoffs == [(onward, StateTransfer("anon-9", onward, state, at(minutes=1)))]
    assert target not in p.states


def test_a_local_merge_target_is_loaded_before_the_request() -> None:
    [source, target] = keys_on(0, 2, 2)
    [remote] = keys_on(1, 2, 1)
    u, p = unit(2), part(0)
    assert list(u.keys_for(p, MergeRequest(source, target, T0))) == [source, target]
    assert list(u.keys_for(p, MergeRequest(source, remote, T0))) == [source]


def test_an_erased_customer_stays_erased_until_the_erasure_is_stored() -> None:
    u, p = unit(), part()
    cart = event("Product Added", at(minutes=1))
    u.event(p, cart, cart.to_bytes(), 0)
    erasure = uuid.uuid4()
    u.erase(p, erasure, "user-1", requested_at=at(minutes=2))
    assert "user-1" not in p.states and "user-1" in p.tombstones
    again = event("Product Added", at(minutes=3))
    u.event(p, again, again.to_bytes(), 1)
    assert "user-1" not in p.states and u.erased == 1
    assert p.pending.erased == [(erasure, "user-1")]
    [notice] = [row for row in p.pending.outbox if row[3] == "erasure"]
    assert notice[0] == f"erasure_{erasure}" and '"requested_at"' in notice[4]
    assert at(minutes=2).isoformat()[:19] in notice[4]


def test_a_timer_that_failed_to_fire_is_dropped_the_second_time() -> None:
    u, p = unit(minutes=120), part()
    p.watermark = at(minutes=120)
    cart = event("Product Added", at(minutes=1))
    u.event(p, cart, cart.to_bytes(), 0)
    [timer] = p.states["user-1"].timers.values()
    u.drop_timers.add("user-1")
    u.fire(p, "user-1")
    assert not p.states["user-1"].timers and u.dropped == [timer.timer_id]
    assert not u.actions and "user-1" not in u.drop_timers
