"""The in-memory fold of one batch: every input through the core, per customer, in order.

No I/O here. The loader has already locked and loaded every customer the batch can touch
(:func:`keys_to_lock` names them); the writer then persists :class:`Fold` in a handful of
batched statements. Identity handling lives here too, because it decides which state an
event belongs to:

- an event's customer is its ``customer_key`` (userId, else anonymousId), followed through
  ``identity_links`` (an anonymous id merged earlier routes to the known customer);
- an event that names both a user id and an anonymous id not linked yet merges the
  anonymous customer (profile, open cart, runs, timers) into the known one and links it;
- an ``alias`` merges ``previous_id``'s customer into the event's customer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from services.trigger_engine.config_cache import EngineConfig
from services.trigger_engine.core.context import StepContext
from services.trigger_engine.core.effects import Effect
from services.trigger_engine.core.engine import apply
from services.trigger_engine.core.fold import advance
from services.trigger_engine.core.inputs import LifecycleChanged, TimerFired
from services.trigger_engine.core.merging import merge_states
from services.trigger_engine.core.state import CustomerState
from shared.envelope import Event

_MAX_HOPS = 16


def resolve(key: str, links: Mapping[str, str]) -> str:
    """Follow identity links from ``key`` to the customer it was merged into."""
    for _ in range(_MAX_HOPS):
        target = links.get(key)
        if target is None or target == key:
            return key
        key = target
    return key


def identity_ids(events: Iterable[Event]) -> set[str]:
    """Every id an event names, to look up in ``identity_links``."""
    ids: set[str] = set()
    for event in events:
        ids.add(event.customer_key)
        for other in (event.anonymous_id, event.previous_id):
            if other:
                ids.add(other)
    return ids


def keys_to_lock(events: Iterable[Event], links: Mapping[str, str]) -> set[str]:
    """The customers a batch may read or write, given the links known before it."""
    keys: set[str] = set()
    for event in events:
        key = resolve(event.customer_key, links)
        keys.add(key)
        anonymous = event.anonymous_id
        if anonymous and anonymous != event.customer_key and anonymous not in links:
            keys.add(anonymous)
        if event.previous_id:
            keys.add(resolve(event.previous_id, links))
    return keys


@dataclass
class Fold:
    """One batch's customers, advanced input by input.

    The fold owns ``states``: the loader decoded them for this batch alone (or took them
    out of its cache), so the core advances them in place (:func:`~.core.fold.advance`)
    instead of copying every state for every input.
    """

    config: EngineConfig
    now: datetime
    states: dict[str, CustomerState]
    links: dict[str, str]
    existing: set[str] = field(default_factory=set)
    #: the row version each loaded state is the content of (see :mod:`.cache`)
    versions: dict[str, int] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    removed: set[str] = field(default_factory=set)
    new_links: dict[str, str] = field(default_factory=dict)
    merged: list[tuple[str, str]] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)

    def customer_of(self, event: Event) -> str:
        return resolve(event.customer_key, self.links)

    def apply_event(self, event: Event) -> str:
        """Step ``event`` on its customer (after any merge it asks for); returns the key."""
        key = self.customer_of(event)
        anonymous = event.anonymous_id
        if anonymous and anonymous != event.customer_key:
            target = self.links.get(anonymous)
            if target is None:
                self.merge(anonymous, into=key)
        if event.previous_id:
            source = resolve(event.previous_id, self.links)
            if source != key:
                self.merge(source, into=key)
        self._advance(key, event)
        return key

    def apply_timer(self, key: str, fired: TimerFired) -> bool:
        """Fire a timer of ``key``; False when the customer is gone (erased or merged)."""
        if key not in self.states:
            return False
        self._advance(key, fired)
        return True

    def reevaluate(self, key: str, change: LifecycleChanged) -> bool:
        """Move ``key`` to ``config.lifecycle`` (the changed model); False when the customer
        is gone. Only a customer the model moves (stage or stage timer) counts as changed,
        so a pass writes the few rows it changes, not every row it reads."""
        state = self.states.get(key)
        if state is None:
            return False
        ctx = StepContext(
            state=state,
            rules=self.config.rules,
            lifecycle=self.config.lifecycle,
            now=self.now,
            policy=self.config.policy,
        )
        apply(ctx, change)  # the fold owns its states (see the class)
        if ctx.effects:
            self.changed.add(key)
            self.effects.extend(ctx.effects)
        return True

    def merge(self, source: str, *, into: str) -> None:
        """Fold ``source``'s customer into ``into`` and link ``source`` to it."""
        if source == into:
            return
        anonymous = self.states.get(source)
        if anonymous is not None:
            known = self._state(into)
            result = merge_states(
                known,
                anonymous,
                rules=self.config.rules,
                lifecycle=self.config.lifecycle,
                now=self.now,
                policy=self.config.policy,
            )
            self.states[into] = result.state
            self.changed.add(into)
            self.effects.extend(result.effects)
            del self.states[source]
            self.changed.discard(source)
            self.removed.add(source)
            self.merged.append((source, into))
        self._link(source, into)

    def final_key(self, key: str) -> str:
        return resolve(key, self.links)

    def _link(self, source: str, into: str) -> None:
        for anonymous, target in list(self.links.items()):
            if target == source:
                self.links[anonymous] = into
                if anonymous in self.new_links:
                    self.new_links[anonymous] = into
        self.links[source] = into
        self.new_links[source] = into

    def _state(self, key: str) -> CustomerState:
        state = self.states.get(key)
        if state is None:
            state = CustomerState.new(key)
            self.states[key] = state
        return state

    def _advance(self, key: str, input: Event | TimerFired) -> None:
        """``step`` on ``key``'s state in place: the fold owns its states (see the class)."""
        effects = advance(
            self._state(key),
            input,
            rules=self.config.rules,
            lifecycle=self.config.lifecycle,
            now=self.now,
            policy=self.config.policy,
        )
        if effects is not None:
            self.changed.add(key)
            self.effects.extend(effects)
