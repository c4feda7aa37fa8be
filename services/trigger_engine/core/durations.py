"""ISO 8601 durations (``PT2S``, ``PT1H``, ``P7D``, ``P1DT2H``, ``P2W``) as ``timedelta``.

Years and months are refused on purpose: they have no fixed length, and a rule that waits
"P1M" would send on a different day depending on the calendar. Rules say ``P30D`` instead.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_PATTERN = re.compile(
    r"^P(?!$)"
    r"(?:(?P<years>\d+)Y)?"
    r"(?:(?P<months>\d+)M)?"
    r"(?:(?P<weeks>\d+)W)?"
    r"(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)"
    r"(?:(?P<hours>\d+)H)?"
    r"(?:(?P<minutes>\d+)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d{1,6})?)S)?"
    r")?$"
)

_EXAMPLES = "e.g. PT30S, PT1H, P7D, P1DT2H"


class DurationError(ValueError):
    """A string that is not an ISO 8601 duration we accept; the message says why."""


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration with weeks, days, hours, minutes and (fractional) seconds."""
    if not isinstance(text, str):
        raise DurationError(f"expected an ISO 8601 duration string ({_EXAMPLES}), got {text!r}")
    raw = text.strip().upper()
    match = _PATTERN.match(raw)
    if match is None:
        raise DurationError(_explain(text))
    parts = match.groupdict()
    if parts["years"] or parts["months"]:
        raise DurationError(
            f"{text!r}: years and months have no fixed length; use days or weeks (e.g. P30D)"
        )
    return timedelta(
        weeks=int(parts["weeks"] or 0),
        days=int(parts["days"] or 0),
        hours=int(parts["hours"] or 0),
        minutes=int(parts["minutes"] or 0),
        seconds=float(parts["seconds"] or 0),
    )


def _explain(text: str) -> str:
    """Name the most likely mistake instead of a bare "invalid"."""
    raw = text.strip().upper()
    if not raw:
        return f"empty duration; expected ISO 8601 ({_EXAMPLES})"
    if not raw.startswith("P"):
        return f"{text!r} must start with 'P' ({_EXAMPLES})"
    if raw in ("P", "PT"):
        return f"{text!r} has no amount ({_EXAMPLES})"
    if raw.endswith("T"):
        return f"{text!r} has a 'T' but no hours, minutes or seconds after it"
    if "-" in raw:
        return f"{text!r}: negative durations are not allowed"
    date_part = raw[1:].partition("T")[0]
    if any(unit in date_part for unit in "HS"):
        return f"{text!r}: hours and seconds go after 'T' (e.g. PT{date_part})"
    return f"{text!r} is not an ISO 8601 duration ({_EXAMPLES})"


def format_duration(value: timedelta) -> str:
    """The shortest ISO 8601 form of a non-negative ``timedelta`` (``P1DT2H``, ``PT0S``)."""
    if value < timedelta(0):
        raise DurationError(f"negative duration {value}")
    days = value.days
    seconds = value.seconds
    micros = value.microseconds
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    out = "P"
    if days:
        out += f"{days}D"
    time = ""
    if hours:
        time += f"{hours}H"
    if minutes:
        time += f"{minutes}M"
    if seconds or micros:
        frac = f".{micros:06d}".rstrip("0") if micros else ""
        time += f"{seconds}{frac}S"
    if time:
        out += "T" + time
    return out if out != "P" else "PT0S"


def _validate(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


#: A ``timedelta`` field that reads and writes ISO 8601 strings in JSON.
Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "duration", "examples": ["PT1H", "P7D"]}),
]
