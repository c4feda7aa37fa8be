"""The rules a step runs against, passed in as data (never global state).

``current`` holds the newest version of every rule; ``versions`` every version still
referenced by a run in flight, because runs stay pinned to the version they started on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from .rules import EventTrigger, InactivityTrigger, Rule


@dataclass(frozen=True)
class RuleSet:
    current: Mapping[str, Rule] = field(default_factory=dict)
    versions: Mapping[tuple[str, int], Rule] = field(default_factory=dict)

    @classmethod
    def of(cls, rules: Iterable[Rule], *, history: Iterable[Rule] = ()) -> RuleSet:
        """Build from the current versions plus older ones that runs may be pinned to."""
        current = {rule.key: rule for rule in rules}
        versions = {(rule.key, rule.version): rule for rule in (*history, *current.values())}
        return cls(current=current, versions=versions)

    def active(self) -> tuple[Rule, ...]:
        """Enabled current rules in key order (the order in which a step evaluates them)."""
        return self._active

    def triggered_by(self, event: str | None) -> tuple[Rule, ...]:
        """The active rules with an ``event`` trigger on ``event``, in key order."""
        return self._by_event.get(event, ()) if event is not None else ()

    def listens_to(self, event: str | None) -> bool:
        """Whether a run of any rule version here can react to ``event`` (an ``exit_when``
        or a goal names it): the others need not look at the customer's runs."""
        return event is not None and event in self._listened

    def watching(self, event: str | None) -> tuple[Rule, ...]:
        """The active rules with an ``inactivity`` trigger on ``event``, in key order."""
        return self._by_absence.get(event, ()) if event is not None else ()

    # A rule set is immutable: what a step looks up per input is indexed once per set.

    @cached_property
    def _active(self) -> tuple[Rule, ...]:
        return tuple(self.current[key] for key in sorted(self.current) if self.current[key].enabled)

    @cached_property
    def _by_event(self) -> dict[str, tuple[Rule, ...]]:
        return _index(rule for rule in self._active if isinstance(rule.trigger, EventTrigger))

    @cached_property
    def _listened(self) -> frozenset[str]:
        names: set[str] = set()
        for rule in (*self.current.values(), *self.versions.values()):
            names.update(exit_when.event for exit_when in rule.exit_when)
            if rule.goal is not None:
                names.add(rule.goal.event)
        return frozenset(names)

    @cached_property
    def _by_absence(self) -> dict[str, tuple[Rule, ...]]:
        return _index(rule for rule in self._active if isinstance(rule.trigger, InactivityTrigger))

    def is_live(self, key: str) -> bool:
        rule = self.current.get(key)
        return rule is not None and rule.enabled

    def pinned(self, key: str, version: int) -> Rule | None:
        current = self.current.get(key)
        if current is not None and current.version == version:
            return current
        return self.versions.get((key, version))


def _index(rules: Iterable[Rule]) -> dict[str, tuple[Rule, ...]]:
    by_event: dict[str, list[Rule]] = {}
    for rule in rules:
        assert isinstance(rule.trigger, EventTrigger | InactivityTrigger)
        by_event.setdefault(rule.trigger.event, []).append(rule)
    return {event: tuple(found) for event, found in by_event.items()}
