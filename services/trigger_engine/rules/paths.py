"""Condition paths checked against what the views hold, so a typo is a 422, not a rule that
silently never matches (``profile.trait.email`` for ``profile.traits.email``).

What exists is read off the models themselves: ``profile.*`` is the customer's
:class:`~services.trigger_engine.core.profile.Profile` as conditions see it (without its
order log, plus ``stage``, ``stage_entered_at``, ``known`` and ``cart.value``), ``event.*``
the :class:`~shared.envelope.EventV1` of the event (pydantic models and msgspec structs
alike). Below a JSON object field (``traits``,
``properties``, ``context``) any name is allowed; below a list, an index; below a number,
string or date, nothing.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Final, Union

import msgspec
from pydantic import BaseModel

from services.trigger_engine.core.profile import Cart, Profile
from services.trigger_engine.core.rule_checks import Loc, RuleIssue
from shared.envelope import EventV1

#: Fields the profile view adds to the model's, and those it leaves out.
_PROFILE_EXTRA: Final[dict[str, Any]] = {"stage": str, "stage_entered_at": datetime, "known": bool}
_PROFILE_HIDDEN: Final = frozenset({"order_log"})
_CART_EXTRA: Final[dict[str, Any]] = {"value": float}


def _is_record(kind: Any) -> bool:
    """A pydantic model or a msgspec struct: a JSON object with known fields."""
    return isinstance(kind, type) and issubclass(kind, BaseModel | msgspec.Struct)


def _fields(record: type[Any], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    if issubclass(record, BaseModel):
        found = {name: info.annotation for name, info in record.model_fields.items()}
    else:
        found = {field.name: field.type for field in msgspec.structs.fields(record)}
    if record is Cart:
        found.update(_CART_EXTRA)
    return {**found, **(extra or {})}


def _profile_fields() -> dict[str, Any]:
    fields = _fields(Profile, _PROFILE_EXTRA)
    return {name: kind for name, kind in fields.items() if name not in _PROFILE_HIDDEN}


def _unwrap(kind: Any) -> Any:
    """``X | None`` → ``X``."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return kind


def _describe(kind: Any) -> str:
    if kind in (int, float):
        return "a number"
    if kind is bool:
        return "true or false"
    if kind is datetime:
        return "a date"
    return "a string"


def _check(parts: list[str], fields: dict[str, Any], shown: str) -> str | None:
    """Why ``parts`` (below ``shown``) can never resolve, or None."""
    name, rest = parts[0], parts[1:]
    if name not in fields:
        close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
        hint = f"; did you mean '{shown}.{close[0]}'?" if close else ""
        known = ", ".join(sorted(fields))
        return f"{shown} has no field {name!r}{hint} (known: {known})"
    return _check_below(rest, _unwrap(fields[name]), f"{shown}.{name}")


def _check_below(rest: list[str], kind: Any, shown: str) -> str | None:
    if not rest:
        return None
    origin = typing.get_origin(kind)
    if kind is Any or origin is dict or kind is dict:
        return None
    if origin is list:
        index = rest[0]
        if not index.isdigit():
            return f"{shown} is a list: put an index after it (e.g. {shown}.0) or use 'contains'"
        return _check_below(rest[1:], _unwrap(typing.get_args(kind)[0]), f"{shown}.{index}")
    if _is_record(kind):
        return _check(rest, _fields(kind), shown)
    return f"{shown} is {_describe(kind)}: there is nothing below it"


def path_problem(path: str) -> str | None:
    """Why the condition path ``path`` can never resolve, or None when it can.

    Paths whose root is neither ``event`` nor ``profile``, or with an empty segment, are the
    rule model's to refuse; they pass here.
    """
    parts = path.split(".")
    if len(parts) < 2 or not all(parts):
        return None
    if parts[0] == "profile":
        return _check(parts[1:], _profile_fields(), "profile")
    if parts[0] == "event":
        return _check(parts[1:], _fields(EventV1), "event")
    return None


def _conditions(data: Mapping[str, Any]) -> Iterator[tuple[Loc, Any]]:
    """Every condition of a rule body (validated or not) with its location."""

    def listed(value: Any, loc: Loc) -> Iterator[tuple[Loc, Any]]:
        if isinstance(value, list):
            for index, condition in enumerate(value):
                yield (*loc, index), condition

    trigger = data.get("trigger")
    if isinstance(trigger, Mapping):
        yield from listed(trigger.get("where"), ("trigger", "where"))
    yield from listed(data.get("audience"), ("audience",))
    exits = data.get("exit_when")
    if isinstance(exits, list):
        for index, exit_when in enumerate(exits):
            if isinstance(exit_when, Mapping):
                yield from listed(exit_when.get("where"), ("exit_when", index, "where"))
    goal = data.get("goal")
    if isinstance(goal, Mapping):
        yield from listed(goal.get("where"), ("goal", "where"))


def check_paths(data: Any) -> list[RuleIssue]:
    """A problem for every condition path in the rule body that can never resolve."""
    if not isinstance(data, Mapping):
        return []
    issues: list[RuleIssue] = []
    for loc, condition in _conditions(data):
        path = condition.get("path") if isinstance(condition, Mapping) else None
        problem = path_problem(path) if isinstance(path, str) else None
        if problem is not None:
            issues.append(RuleIssue(loc=(*loc, "path"), message=f"{path!r}: {problem}"))
    return issues
