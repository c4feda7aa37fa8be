"""Resource limits of template rendering: the per-render budget and the size arithmetic.

Kept apart from :mod:`.sandbox` (which wires these checks into Jinja) so the rules can be read
on their own: what a step is, when a value is too big, and how big an operation's result will
be *before* Python allocates it.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import islice
from typing import Any

from jinja2 import Environment
from jinja2.exceptions import SecurityError
from jinja2.filters import make_attrgetter
from markupsafe import soft_str


@dataclass(frozen=True, slots=True)
class RenderLimits:
    """Resource limits of one render (all parts of a template share one budget)."""

    timeout: float = 1.0
    """Seconds of wall clock for the whole render."""
    max_output: int = 256 * 1024
    """Characters of one rendered part, and of any single value built while rendering."""
    max_steps: int = 100_000
    """Loop iterations + calls + filters + intercepted operators."""
    max_range: int = 10_000
    """Items one ``range()`` may produce."""
    max_items: int = 10_000
    """Items of a list, tuple or dict built while rendering."""
    max_width: int = 1_000
    """Largest width or precision in ``%`` and ``str.format`` specs."""
    max_int_bits: int = 4_096
    """Largest integer (in bits) that ``*`` and ``**`` may produce."""


class RenderLimitExceeded(SecurityError):
    """The template tried to use more time, steps or memory than its limits allow."""


@dataclass(slots=True)
class Budget:
    """Steps and deadline of the render in progress; held in :data:`CURRENT_BUDGET`."""

    limits: RenderLimits
    clock: Callable[[], float]
    deadline: float = field(init=False)
    steps: int = 0

    def __post_init__(self) -> None:
        self.deadline = self.clock() + self.limits.timeout

    def tick(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise RenderLimitExceeded(
                f"template did more than {self.limits.max_steps} steps of work"
            )
        if self.clock() > self.deadline:
            raise RenderLimitExceeded(
                f"template took longer than {self.limits.timeout:g}s to render"
            )


#: The budget of the render running in this thread or task (a context variable, so
#: concurrent renders never share one).
CURRENT_BUDGET: ContextVar[Budget | None] = ContextVar("clm_template_budget", default=None)


def new_budget(limits: RenderLimits, clock: Callable[[], float] = time.monotonic) -> Budget:
    """A fresh budget; set it in :data:`CURRENT_BUDGET` around a render."""
    return Budget(limits=limits, clock=clock)


def tick() -> None:
    """One step of work for the current render."""
    budget = CURRENT_BUDGET.get()
    if budget is not None:  # None while Jinja constant-folds at compile time
        budget.tick()


# --- size checks ----------------------------------------------------------------------------


def check_len(size: int, limits: RenderLimits) -> None:
    if size > limits.max_output:
        raise RenderLimitExceeded(
            f"a value of {size} characters exceeds the limit of {limits.max_output}"
        )


def take(iterable: Any, limits: RenderLimits) -> list[Any]:
    """Materialize at most ``max_items`` items, or refuse."""
    items = list(islice(iter(iterable), limits.max_items + 1))
    if len(items) > limits.max_items:
        raise RenderLimitExceeded(f"more than {limits.max_items} items")
    return items


def check_weight(value: Any, limits: RenderLimits) -> None:
    """Refuse strings, and containers whose rendered size or item count, exceed the limits.

    Walks iteratively and stops as soon as the cap is passed, so shared references
    (``[a, a, a]`` with ``a`` itself a big list) cannot make the walk itself expensive.
    """
    if isinstance(value, str | bytes):
        if len(value) > limits.max_output:
            raise RenderLimitExceeded(f"a value longer than {limits.max_output} characters")
        return
    if not isinstance(value, list | tuple | dict | set | frozenset):
        return
    if len(value) > limits.max_items:
        raise RenderLimitExceeded(f"a collection of more than {limits.max_items} items")
    weight = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            weight += len(item) + 4
        elif isinstance(item, dict):
            weight += 2
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            weight += 2
            stack.extend(item)
        else:
            weight += 8
        if weight > limits.max_output:
            raise RenderLimitExceeded(
                f"a collection that would render to more than {limits.max_output} characters"
            )


def check_repeat(left: Any, right: Any, limits: RenderLimits) -> None:
    """``left * right``: sequence repetition or integer product."""
    seq, times = (left, right) if isinstance(right, int) else (right, left)
    if isinstance(times, int) and isinstance(seq, str | bytes | list | tuple):
        cap = limits.max_output if isinstance(seq, str | bytes) else limits.max_items
        if len(seq) * max(times, 0) > cap:
            raise RenderLimitExceeded(f"repetition would exceed the limit of {cap}")
    elif isinstance(left, int) and isinstance(right, int):
        _check_bits(left.bit_length() + right.bit_length(), limits)


def check_power(base: Any, exponent: Any, limits: RenderLimits) -> None:
    """``base ** exponent`` on integers (floats overflow quickly by themselves)."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        _check_bits(base.bit_length() * exponent, limits)


def _check_bits(bits: int, limits: RenderLimits) -> None:
    if bits > limits.max_int_bits:
        raise RenderLimitExceeded(f"integer would exceed {limits.max_int_bits} bits")


_PERCENT_SPEC = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?[hlL]?(?P<conv>.)",
    re.DOTALL,
)


def check_percent(fmt: str, args: Any, limits: RenderLimits) -> None:
    """``fmt % args``: widths capped, ``*`` refused, output size estimated first.

    Each conversion is charged its width, its precision and the text of its argument (plus a
    margin for numbers, whose formatted form can be longer than ``str()``), so a format that
    repeats one big argument is refused before it is built.
    """
    total = len(fmt)
    specs = list(_PERCENT_SPEC.finditer(fmt))
    for spec in specs:
        for group in ("width", "prec"):
            amount = spec.group(group)
            if amount == "*":
                raise SecurityError("'*' widths are not allowed in % formatting")
            if amount is not None and int(amount) > limits.max_width:
                raise RenderLimitExceeded(f"format width above {limits.max_width}")
            total += int(amount or 0)
        if spec.group("key") is not None and isinstance(args, Mapping):
            total += len(soft_str(args.get(spec.group("key"), ""))) + 32
    if not isinstance(args, Mapping):
        values = args if isinstance(args, tuple) else (args,)
        total += sum(len(soft_str(v)) + 32 for v in values[: len(specs)])
    check_len(total, limits)


def check_format_specs(fmt: str, limits: RenderLimits) -> None:
    """``str.format`` specs: no nested fields, widths and precisions capped.

    The output size of ``str.format`` is checked while it is written (see the counting
    formatter in :mod:`.sandbox`); this only refuses specs that would allocate too much at once.
    """
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # the real call raises the same error
    for _, _, spec, _ in parsed:
        if not spec:
            continue
        if "{" in spec:
            raise SecurityError("nested replacement fields are not allowed in format specs")
        if any(int(n) > limits.max_width for n in re.findall(r"\d+", spec)):
            raise RenderLimitExceeded(f"format width above {limits.max_width}")


def replaced_len(text: str, old: str, new: str, count: int) -> int:
    """Length of ``text.replace(old, new, count)``, computed without building it."""
    hits = text.count(old) if old else len(text) + 1
    if count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(len(new) - len(old), 0)


def joined_len(items: list[Any], separator: str) -> int:
    """Length of ``separator.join(map(str, items))``, computed without building it."""
    return sum(len(soft_str(i)) for i in items) + len(separator) * max(len(items) - 1, 0)


# --- built-in filters whose output can dwarf their input ------------------------------------
# A precheck gets ([value, *positional], kwargs) — without Jinja's context/environment
# argument — and may replace them (join materializes its iterable once, here).

Precheck = Callable[[Environment, RenderLimits, list[Any], dict[str, Any]], None]


def _param(params: list[Any], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(params) > index:
        return params[index]
    return kwargs.get(name, default)


def _pre_center(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    width = _param(p, kw, 1, "width", 80)
    if isinstance(width, int):
        check_len(width, lim)


def _pre_indent(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    text = soft_str(p[0]) if p else ""
    width = _param(p, kw, 1, "width", 4)
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    check_len(len(text) + (text.count("\n") + 1) * max(pad, 0), lim)


def _pre_wordwrap(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    wrapstring = _param(p, kw, 4, "wrapstring", None)
    if wrapstring is not None and len(soft_str(wrapstring)) > 16:
        raise RenderLimitExceeded("wordwrap's wrapstring may be at most 16 characters")


def _pre_replace(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    text = soft_str(p[0]) if p else ""
    old = soft_str(_param(p, kw, 1, "old", ""))
    new = soft_str(_param(p, kw, 2, "new", ""))
    count = _param(p, kw, 3, "count", None)
    check_len(replaced_len(text, old, new, count if isinstance(count, int) else -1), lim)


def _pre_join(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    if not p:
        return
    items = take(p[0], lim)
    attribute = _param(p, kw, 2, "attribute", None)
    if attribute is not None:
        getter = make_attrgetter(env, attribute)
        items = [getter(item) for item in items]
        del p[2:]
        kw.pop("attribute", None)
    p[0] = items
    check_len(joined_len(items, soft_str(_param(p, kw, 1, "d", ""))), lim)


def _pre_format(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    if p:
        check_percent(soft_str(p[0]), kw or tuple(p[1:]), lim)


def _pre_count(index: int, name: str) -> Precheck:
    def check(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
        amount = _param(p, kw, index, name, 1)
        if isinstance(amount, int) and amount > lim.max_items:
            raise RenderLimitExceeded(f"{name} above {lim.max_items}")

    return check


def _pre_tojson(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    indent = _param(p, kw, 1, "indent", None)
    if isinstance(indent, int) and indent > 16:
        raise RenderLimitExceeded("tojson indent may be at most 16")


def _pre_urlize(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    # urlize is the slowest filter per character; keep one call well inside the deadline.
    if p and len(soft_str(p[0])) > lim.max_output // 8:
        raise RenderLimitExceeded(f"urlize input above {lim.max_output // 8} characters")


def _pre_sum(env: Environment, lim: RenderLimits, p: list[Any], kw: dict[str, Any]) -> None:
    # Summing lists or strings from a start value is quadratic and unbounded.
    start = _param(p, kw, 2, "start", 0)
    if not isinstance(start, int | float | Decimal):
        raise SecurityError("sum() start must be a number")


FILTER_PRECHECKS: dict[str, Precheck] = {
    "center": _pre_center,
    "indent": _pre_indent,
    "wordwrap": _pre_wordwrap,
    "replace": _pre_replace,
    "join": _pre_join,
    "format": _pre_format,
    "batch": _pre_count(1, "linecount"),
    "slice": _pre_count(1, "slices"),
    "tojson": _pre_tojson,
    "sum": _pre_sum,
    "urlize": _pre_urlize,
}
