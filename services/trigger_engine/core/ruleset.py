"""The rules a step runs against, passed in as data (never global state).

``current`` holds the newest version of every rule; ``versions`` every version still
referenced by a run in flight, because runs stay pinned to the version they started on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .rules import Rule


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

    def active(self) -> list[Rule]:
        """Enabled current rules in key order (the order in which a step evaluates them)."""
        return [self.current[key] for key in sorted(self.current) if self.current[key].enabled]

    def is_live(self, key: str) -> bool:
        rule = self.current.get(key)
        return rule is not None and rule.enabled

    def pinned(self, key: str, version: int) -> Rule | None:
        current = self.current.get(key)
        if current is not None and current.version == version:
            return current
        return self.versions.get((key, version))
