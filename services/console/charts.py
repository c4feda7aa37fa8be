"""Chart geometry for server-rendered SVG: pure functions from numbers to shapes.

The templates draw what these return (``templates/charts.html``), so a chart needs no
JavaScript, prints, and reads the same in every browser; each bar carries its label and
value for the ``<title>`` tooltip and for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    top: float
    """The value the full height stands for (a round number at or above the largest)."""


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        candidate = step * 10**exponent
        if candidate >= value:
            return float(candidate)
    return 10.0 ** (exponent + 1)


def columns(
    data: Sequence[tuple[str, float]], *, width: int = 960, height: int = 200, gap: float = 0.2
) -> BarChart:
    """Vertical bars, left to right in the given order (e.g. one per day)."""
    top = nice_ceiling(max((v for _, v in data), default=0.0))
    slot = width / max(len(data), 1)
    bars = [
        Bar(
            x=i * slot + slot * gap / 2,
            y=height - height * value / top,
            width=slot * (1 - gap),
            height=height * value / top,
            label=label,
            value=value,
        )
        for i, (label, value) in enumerate(data)
    ]
    return BarChart(width=width, height=height, bars=bars, top=top)


def rows(
    data: Sequence[tuple[str, float]], *, width: int = 480, row: int = 26, gap: int = 6
) -> BarChart:
    """Horizontal bars, top to bottom in the given order (e.g. customers per stage)."""
    top = nice_ceiling(max((v for _, v in data), default=0.0))
    bars = [
        Bar(
            x=0,
            y=i * (row + gap),
            width=width * value / top,
            height=row,
            label=label,
            value=value,
        )
        for i, (label, value) in enumerate(data)
    ]
    return BarChart(width=width, height=max(len(data), 1) * (row + gap), bars=bars, top=top)


@dataclass(frozen=True)
class Sparkline:
    width: int
    height: int
    path: str
    points: list[tuple[float, float, str, float]]
    """(x, y, label, value) of each known point."""


def sparkline(
    data: Sequence[tuple[str, float | None]], *, width: int = 160, height: int = 40, pad: int = 4
) -> Sparkline:
    """A line through the known values (a period without a value leaves a gap)."""
    known = [v for _, v in data if v is not None]
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(len(data) - 1, 1)
    points: list[tuple[float, float, str, float]] = []
    path: list[str] = []
    pen_down = False
    for i, (label, value) in enumerate(data):
        if value is None:
            pen_down = False
            continue
        x = round(pad + i * step, 1)
        y = round(height - pad - (height - 2 * pad) * (value - low) / span, 1)
        path.append(f"{'L' if pen_down else 'M'}{x},{y}")
        pen_down = True
        points.append((x, y, label, value))
    return Sparkline(width=width, height=height, path=" ".join(path), points=points)
