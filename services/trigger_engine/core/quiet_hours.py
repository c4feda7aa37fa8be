"""Quiet hours: a daily window of local wall-clock time in which nothing is sent.

All maths is in the customer's IANA time zone (``zoneinfo``), so a window of 21:00-08:00
means 21:00-08:00 on the customer's clock on every day of the year, across DST changes:

- the window is half-open, ``[start, end)``; ``start > end`` spans midnight;
- a moment is quiet when its local wall-clock time lies in the window;
- a quiet spell ends at the first later instant that is not quiet: when the local clock
  reaches ``end``, or when a clock change jumps out of the window. On a spring-forward day
  with ``end`` inside the gap (02:30 when clocks jump from 02:00 to 03:00) that is the jump
  (03:00 local); on a fall-back day it is the first occurrence of ``end`` that is not inside
  the window again.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from .rules import Channel

_HHMM: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$")
#: Zone keys that name the host's zone rather than a place: never a customer's zone.
_HOST_ZONES: Final = frozenset({"localtime", "posixrules", "Factory"})
#: Fallback deferral when no candidate end is found (not reached with real zones).
_RETRY: Final = timedelta(hours=1)
#: How far ahead clock changes are looked for, and how finely (no zone changes twice an hour).
_HORIZON: Final = timedelta(days=3)
_PROBE: Final = timedelta(hours=1)


def _parse_hhmm(value: Any) -> time:
    if isinstance(value, time):
        return value.replace(microsecond=0, tzinfo=None)
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"expected a 24-hour local time 'HH:MM' (or 'HH:MM:SS') such as '21:00', got {value!r}"
        )
    return time(int(match[1]), int(match[2]), int(match[3] or 0))


def _format_hhmm(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


#: A local wall-clock time, ``"HH:MM"`` (or ``"HH:MM:SS"``) in JSON.
LocalTime = Annotated[
    time,
    BeforeValidator(_parse_hhmm),
    PlainSerializer(_format_hhmm, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": _HHMM.pattern, "examples": ["21:00"]}),
]


class QuietHours(BaseModel):
    """``[start, end)`` in the customer's local time; ``start > end`` spans midnight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: LocalTime
    end: LocalTime
    channels: list[Channel] | None = Field(
        default=None, description="channels the quiet hours apply to; null = every channel"
    )

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError(
                "start and end must differ (an empty or whole-day window); "
                "to have no quiet hours set quiet_hours to null"
            )
        return self

    def applies_to(self, channel: str) -> bool:
        return self.channels is None or channel in self.channels

    def contains(self, local: time) -> bool:
        """Whether the wall-clock time ``local`` is inside the window."""
        wall = local.replace(tzinfo=None, fold=0)
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


@lru_cache(maxsize=1024)
def zone_or_none(name: str) -> ZoneInfo | None:
    """The IANA zone ``name``, or None when it is not one (unknown, malformed, host-only)."""
    key = name.strip()
    if not key or key in _HOST_ZONES or len(key) > 64:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def customer_zone(traits_timezone: Any, default: str, device_timezone: Any = None) -> tzinfo:
    """The customer's zone: ``traits.timezone`` (what the shop said), else the device's
    (Segment's ``context.timezone``), else ``default``, else UTC. Unknown or malformed names
    count as absent."""
    for name in (traits_timezone, device_timezone):
        if isinstance(name, str):
            zone = zone_or_none(name)
            if zone is not None:
                return zone
    return zone_or_none(default) or UTC


def is_quiet(window: QuietHours, zone: tzinfo, moment: datetime) -> bool:
    return window.contains(moment.astimezone(zone).time())


def quiet_until(window: QuietHours, zone: tzinfo, moment: datetime) -> datetime | None:
    """None when ``moment`` is not quiet; otherwise the first instant the quiet spell ends.

    The spell ends either when the local clock reaches ``end`` (either occurrence of an
    ambiguous time) or when a clock change jumps out of the window (spring forward over
    ``end``, fall back to before ``start``). The result is later than ``moment``, in UTC, and
    not quiet; the property tests check that no earlier minute is free.
    """
    if not is_quiet(window, zone, moment):
        return None
    local_day = moment.astimezone(zone).date()
    ends = (
        datetime.combine(local_day + timedelta(days=offset), window.end, tzinfo=zone)
        .replace(fold=fold)
        .astimezone(UTC)
        for offset in range(-1, 4)
        for fold in (0, 1)
    )
    candidates = sorted({*ends, *_transitions(zone, moment, _HORIZON)})
    later = [candidate for candidate in candidates if candidate > moment]
    for candidate in later:
        if not is_quiet(window, zone, candidate):
            return candidate
    # Not reached with real zones; a deferral is re-checked when it ends, so any later
    # instant keeps the promise that nothing is sent inside quiet hours.
    return later[-1] if later else moment.astimezone(UTC) + _RETRY


def _transitions(zone: tzinfo, start: datetime, span: timedelta) -> list[datetime]:
    """The instants in about ``(start, start + span]`` at which ``zone``'s offset changes."""
    found: list[datetime] = []
    step = int(_PROBE.total_seconds())
    lo = int(start.timestamp())
    before = _at(lo).astimezone(zone).utcoffset()
    for _ in range(int(span / _PROBE)):
        hi = lo + step
        after = _at(hi).astimezone(zone).utcoffset()
        if after != before:
            found.append(_at(_first_change(zone, lo, hi, before)))
            before = after
        lo = hi
    return found


def _first_change(zone: tzinfo, lo: int, hi: int, before: timedelta | None) -> int:
    """Bisect whole seconds: the offset is ``before`` at ``lo`` and differs at ``hi``."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _at(mid).astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
