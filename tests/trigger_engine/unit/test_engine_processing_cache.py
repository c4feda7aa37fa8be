"""The state cache hands a state out once, and only for the row version it was written as."""

from __future__ import annotations

from services.trigger_engine.core.state import CustomerState
from services.trigger_engine.processing.cache import StateCache, Versioned


def _state(key: str) -> CustomerState:
    return CustomerState.new(key)


def test_a_state_is_taken_out_once_and_only_for_its_version() -> None:
    cache = StateCache(capacity=10)
    first = _state("a")
    cache.keep({"a": Versioned(7, first)})
    assert cache.take("a", 8) is None  # the row changed since: the entry is dropped
    assert cache.take("a", 7) is None  # ... so a later take finds nothing either
    cache.keep({"a": Versioned(9, first)})
    assert cache.take("a", 9) is first
    assert cache.take("a", 9) is None  # the fold owns it now; it comes back after commit
    assert (cache.hits, cache.misses) == (1, 3)


def test_the_least_recently_kept_go_first_and_zero_capacity_keeps_nothing() -> None:
    cache = StateCache(capacity=2)
    cache.keep({"a": Versioned(1, _state("a")), "b": Versioned(1, _state("b"))})
    cache.keep({"a": Versioned(2, _state("a"))})  # a is now the most recent
    cache.keep({"c": Versioned(1, _state("c"))})
    assert len(cache) == 2
    assert cache.take("b", 1) is None
    assert cache.take("a", 2) is not None
    assert cache.take("c", 1) is not None
    nothing = StateCache(capacity=0)
    nothing.keep({"a": Versioned(1, _state("a"))})
    assert len(nothing) == 0
