"""Reading a condition's value straight from the state and the event, without dumping them.

Conditions are defined on JSON views (``profile.*``: the profile as JSON plus its stage;
``event.*``: the event as JSON; see :meth:`.context.StepContext.profile_view`). Dumping the
profile or the event for every condition check costs more than the rest of a step, so
:func:`read` walks the live objects instead, for the paths where that gives exactly what
the dump would: plain JSON values (strings, integers, booleans, null, finite floats, and
dicts/lists of those). Anything else (a datetime, a model, a non-finite float, …) answers
:data:`SLOW`, and the caller resolves the path on the dumped view as before.
"""

from __future__ import annotations

import math
from typing import Any, Final

from shared.envelope import Event

from .conditions import MISSING, Condition
from .profile import Profile
from .state import CustomerState


class _Slow:
    def __repr__(self) -> str:
        return "SLOW"


#: "Resolve this one on the dumped view."
SLOW: Final = _Slow()

#: Profile fields whose live value is already what the JSON view holds (when plain).
_PROFILE_PLAIN: Final = frozenset(
    {
        "customer_key",
        "user_id",
        "anonymous_ids",
        "traits",
        "orders",
        "revenue",
        "aov",
        "cart_adds",
        "checkouts",
    }
)
#: Event fields whose live value is already what the JSON view holds (when plain).
_EVENT_PLAIN: Final = frozenset(
    {
        "type",
        "version",
        "source",
        "message_id",
        "customer_key",
        "call",
        "event",
        "user_id",
        "anonymous_id",
        "previous_id",
        "group_id",
        "event_id",
        "properties",
        "traits",
        "context",
    }
)


def read(condition: Condition, state: CustomerState, event: Event | None) -> Any:
    """The value ``condition.path`` resolves to, :data:`~.conditions.MISSING`, or SLOW."""
    parts = condition.parts
    if parts[0] == "profile":
        return _profile(parts, state)
    if event is None:
        return MISSING  # no event in the data: every event path is missing
    name = parts[1]
    if name in _EVENT_PLAIN:
        return _walk(getattr(event, name), parts, 2)
    return SLOW if name in Event.__struct_fields__ else MISSING


def _profile(parts: tuple[str, ...], state: CustomerState) -> Any:
    profile = state.profile
    name = parts[1]
    if name in _PROFILE_PLAIN:
        return _walk(getattr(profile, name), parts, 2)
    if name == "stage":
        return _walk(state.stage, parts, 2)
    if name == "known":
        return _walk(profile.known, parts, 2)
    if name == "stage_entered_at":
        entered = state.stage_entered_at
        return _walk(entered.isoformat() if entered else None, parts, 2)
    if name == "cart" and len(parts) > 2 and parts[2] == "value":
        return _walk(profile.cart.value, parts, 3)
    if name == "order_log":
        return MISSING  # not part of the view
    return SLOW if name in Profile.__struct_fields__ else MISSING


_STR: Final = frozenset((str,))


def _walk(value: Any, parts: tuple[str, ...], start: int) -> Any:
    """:func:`~.conditions.resolve` from ``parts[start]`` on, on plain JSON values only."""
    for part in parts[start:]:
        kind = type(value)
        if kind is dict:
            if part in value:
                value = value[part]
            elif _STR.issuperset(map(type, value)):  # (in C: no generator)
                return MISSING
            else:
                return SLOW  # the view's keys are strings: "1" may name the key 1
        elif kind is list:
            if not (part.isdigit() and int(part) < len(value)):
                return MISSING
            value = value[int(part)]
        else:
            return MISSING if _plain(value) else SLOW
    return value if _plain(value) else SLOW


def _plain(value: Any) -> bool:
    """Whether ``value`` dumps to JSON as itself."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is dict:
        return all(type(key) is str and _plain(item) for key, item in value.items())
    if kind is list:
        return all(_plain(item) for item in value)
    return False
