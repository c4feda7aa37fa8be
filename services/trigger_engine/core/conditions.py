"""Conditions of rules: a dotted ``path`` into ``event.*`` / ``profile.*``, an ``op`` and a value.

Evaluation reads plain JSON-like dicts (the event and profile as :func:`~.context` builds them),
so the same condition behaves identically live, in back-tests and in property tests.

Missing values: a path that does not resolve makes every op false except ``ne`` and
``not_in`` (true: a missing value is not equal to anything) and ``exists`` with ``false``.
Ordering ops compare numbers with numbers (numeric strings such as ``"20.00"`` count as
numbers, as storefronts send them) and strings with strings; anything else is false.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

Op = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "exists", "contains"]
OPS: Final[tuple[str, ...]] = get_args(Op)
ROOTS: Final = ("event", "profile")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class Condition(BaseModel):
    """``{"path": "event.properties.price", "op": "gte", "value": 20}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    op: Op
    value: Any = None

    @field_validator("path", mode="before")
    @classmethod
    def _check_path(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        parts = value.split(".")
        if parts[0] not in ROOTS:
            raise ValueError(f"path {value!r} must start with 'event.' or 'profile.'")
        if len(parts) < 2 or any(not part for part in parts):
            raise ValueError(
                f"path {value!r} has an empty segment; write e.g. 'event.properties.price'"
            )
        return value

    @field_validator("op", mode="before")
    @classmethod
    def _check_op(cls, value: Any) -> Any:
        if isinstance(value, str) and value not in OPS:
            raise ValueError(f"unknown op {value!r}; expected one of {', '.join(OPS)}")
        return value

    @model_validator(mode="after")
    def _check_value(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value, got {self.value!r}")
        if self.op == "exists" and not isinstance(self.value, bool | None):
            raise ValueError(f"op 'exists' takes true, false or no value, got {self.value!r}")
        if self.op in ("gt", "gte", "lt", "lte") and (
            isinstance(self.value, bool) or not isinstance(self.value, int | float | str)
        ):
            raise ValueError(f"op {self.op!r} needs a number or a string, got {self.value!r}")
        return self

    @property
    def root(self) -> str:
        """``event`` or ``profile``."""
        return self.path.split(".", 1)[0]

    @cached_property
    def parts(self) -> tuple[str, ...]:
        """The path's segments (split once: a condition is immutable)."""
        return tuple(self.path.split("."))


def resolve(path: str, data: Mapping[str, Any]) -> Any:
    """Walk a dotted path through dicts (and list indices); :data:`MISSING` if it breaks."""
    current: Any = data
    for part in path.split("."):
        if isinstance(current, Mapping):
            if part not in current:
                return MISSING
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return MISSING
    return current


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _compare(actual: Any, expected: Any) -> int | None:
    """-1/0/1 like ``cmp``, or None when the two are not comparable."""
    left, right = _number(actual), _number(expected)
    if (
        left is not None
        and right is not None
        and not (isinstance(actual, str) and isinstance(expected, str))
    ):
        return (left > right) - (left < right)
    if isinstance(actual, str) and isinstance(expected, str):
        return (actual > expected) - (actual < expected)
    return None


def _equal(actual: Any, expected: Any) -> bool:
    if actual == expected and type(actual) is type(expected):
        return True
    if isinstance(actual, bool) or isinstance(expected, bool):
        return False
    cmp = _compare(actual, expected)
    return cmp == 0 and (isinstance(actual, int | float) or isinstance(expected, int | float))


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, list):
        return any(_equal(item, expected) for item in actual)
    if isinstance(actual, Mapping):
        return isinstance(expected, str) and expected in actual
    return False


def evaluate(condition: Condition, data: Mapping[str, Any]) -> bool:
    """Whether ``condition`` holds for ``data`` = ``{"event": {...}, "profile": {...}}``."""
    return holds(condition, resolve(condition.path, data))


def holds(condition: Condition, actual: Any) -> bool:
    """Whether ``condition`` holds for the value its path resolved to (or :data:`MISSING`)."""
    op, expected = condition.op, condition.value
    if op == "exists":
        present = actual is not MISSING and actual is not None
        return present if expected is None or expected else not present
    if actual is MISSING:
        return op in ("ne", "not_in")
    if op == "eq":
        return _equal(actual, expected)
    if op == "ne":
        return not _equal(actual, expected)
    if op == "in":
        return any(_equal(actual, item) for item in expected)
    if op == "not_in":
        return not any(_equal(actual, item) for item in expected)
    if op == "contains":
        return _contains(actual, expected)
    cmp = _compare(actual, expected)
    if cmp is None:
        return False
    return {"gt": cmp > 0, "gte": cmp >= 0, "lt": cmp < 0, "lte": cmp <= 0}[op]


def all_match(conditions: Sequence[Condition], data: Mapping[str, Any]) -> bool:
    """Conditions in a list are ANDed; an empty list matches."""
    return all(evaluate(condition, data) for condition in conditions)
