"""How values read on a page: times, numbers, rates (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def when(value: Any) -> str:
    """``2026-11-22 12:00 UTC`` (to the minute), or an em dash."""
    moment = parse_time(value)
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def ago(value: Any, now: datetime | None = None) -> str:
    """``5 min ago`` / ``in 3 h``, for lists where the exact time matters less."""
    moment = parse_time(value)
    if moment is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            amount = f"{int(seconds // size)} {unit}"
            break
    else:
        amount = "just now" if not future else "now"
        return amount
    return f"in {amount}" if future else f"{amount} ago"


def number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.{digits}f}"
    return str(value)


def percent(value: Any) -> str:
    """A rate 0..1 as ``12.5 %``."""
    if value is None:
        return "—"
    return f"{float(value) * 100:.1f} %"


def pretty(value: Any) -> str:
    """JSON for a ``<pre>`` block."""
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str)
