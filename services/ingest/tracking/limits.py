"""Bounds on the shape of a message, checked before anything else looks at it. Pure.

A message that passes can be stored, re-encoded and processed downstream without surprises:

- nesting at most :data:`MAX_DEPTH` levels deep (the message object is level 1), so no
  encoder or database hits its recursion limit;
- at most :data:`MAX_ITEMS` keys in any object and items in any list;
- no NUL character (``\\u0000``) in any key or string: PostgreSQL cannot store one in text
  or JSON, so it would fail later, after the client was told ``200``;
- every number finite and smaller than 2^64 in magnitude: a JSON integer beyond 64 bits
  cannot be kept exactly (a parser turns ``18446744073709551617`` into the float
  ``1.8446744073709552e19``), and an order ``total`` like that is a client bug, not revenue.
"""

from __future__ import annotations

import math
from typing import Any, Final

from services.ingest.tracking.errors import path, show

MAX_DEPTH: Final = 32
MAX_ITEMS: Final = 1000
#: Numbers must be smaller than this in magnitude.
NUMBER_LIMIT: Final = 2.0**64


class LimitExceeded(ValueError):
    """What is wrong and where, as one sentence for the client."""


def check_shape(message: dict[str, Any]) -> str | None:
    """Why ``message`` breaks a bound (one sentence naming the field), or ``None``."""
    try:
        _object(message, (), 1)
    except LimitExceeded as exc:
        return str(exc)
    return None


def _where(loc: tuple[int | str, ...]) -> str:
    return path(loc) or "message"


def _object(value: dict[Any, Any], loc: tuple[int | str, ...], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise LimitExceeded(f"{_where(loc)} is nested more than {MAX_DEPTH} levels deep")
    if len(value) > MAX_ITEMS:
        raise LimitExceeded(f"{_where(loc)} has {len(value)} keys; at most {MAX_ITEMS} allowed")
    for key, item in value.items():
        if isinstance(key, str) and "\x00" in key:
            raise LimitExceeded(
                f"{_where(loc)} has a key with a NUL character (\\u0000): {show(key)}"
            )
        _value(item, (*loc, key), depth)


def _value(value: object, loc: tuple[int | str, ...], depth: int) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise LimitExceeded(f"{_where(loc)} contains a NUL character (\\u0000); remove it")
    elif isinstance(value, dict):
        _object(value, loc, depth + 1)
    elif isinstance(value, list):
        if depth + 1 > MAX_DEPTH:
            raise LimitExceeded(f"{_where(loc)} is nested more than {MAX_DEPTH} levels deep")
        if len(value) > MAX_ITEMS:
            raise LimitExceeded(
                f"{_where(loc)} has {len(value)} items; at most {MAX_ITEMS} allowed"
            )
        for index, item in enumerate(value):
            _value(item, (*loc, index), depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= NUMBER_LIMIT:
            raise LimitExceeded(_number_message(loc, value))
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= NUMBER_LIMIT:
        raise LimitExceeded(_number_message(loc, value))


def _number_message(loc: tuple[int | str, ...], value: float) -> str:
    return (
        f"{_where(loc)} must be a finite number smaller than 2^64 (about 1.8e19) in magnitude,"
        f" got {show(value)}"
    )
