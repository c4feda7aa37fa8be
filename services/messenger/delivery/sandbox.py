"""A Jinja2 sandbox hardened for templates written by shop admins and rendered per customer.

Jinja's :class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` already blocks ``_``-prefixed
attributes and mutation of lists and dicts. It does nothing about *resources* (``'a' * 10**9``,
``range`` loops nested four deep, ``'{:>999999999}'.format(1)``) nor about printing the
``repr`` of functions. This module adds, without threads or signals:

* **A work budget.** Every loop iteration (the compiler wraps each ``{% for %}`` iterable),
  call, filter, intercepted operator and string join costs a step. More than
  ``max_steps`` steps, or a wall clock past the deadline (checked at every step), aborts the
  render with :class:`RenderLimitExceeded`. A thread with a timeout was rejected: Python
  cannot kill it, so a runaway render would keep burning CPU after we gave up on it. Between
  two steps a template can only run one bounded built-in operation, so the deadline holds to
  within one such operation.
* **Size caps checked before allocating.** Repetition (``*``), powers (``**``), ``%`` and
  ``str.format`` formatting, padding and join/replace/indent/wordwrap are refused when the result
  would exceed the output cap; the "weight" (rendered size) of every list, tuple or dict built
  in a template — literals included — is capped the same way, so ``[s, s, s, …]`` cannot
  multiply a large string. ``range`` is capped at ``max_range`` items.
* **No callables as values.** Methods and functions a template reaches are wrapped in an
  opaque object that can be called (through an allow-list of safe methods) but never printed,
  converted or inspected, so no ``<built-in method … at 0x…>`` reaches the output.
* **Fewer globals.** Only ``range`` (capped), ``dict`` and a size-checked ``namespace``;
  ``lipsum``, ``cycler``, ``joiner`` and the ``random`` filter are gone.

The limits and the size arithmetic live in :mod:`.template_limits`; this module wires them
into Jinja (environment overrides and a code generator that wraps loops, ``~`` and literals).
"""

from __future__ import annotations

import functools
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.nodes import EvalContext
from jinja2.runtime import BlockReference, Context, LoopContext, Macro, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import Namespace
from markupsafe import EscapeFormatter, Markup, soft_str

from .template_limits import (
    CURRENT_BUDGET,
    FILTER_PRECHECKS,
    RenderLimitExceeded,
    RenderLimits,
    check_format_specs,
    check_len,
    check_percent,
    check_power,
    check_repeat,
    check_weight,
    joined_len,
    replaced_len,
    take,
    tick,
)


class _OpaqueCallable:
    """A callable a template may call (via the sandbox) but never print or look inside."""

    __slots__ = ("_target",)

    def __init__(self, target: Callable[..., Any]) -> None:
        self._target = target

    def _refuse(self, *_: object) -> str:
        raise SecurityError("functions and methods cannot be output or converted in templates")

    __str__ = __repr__ = _refuse
    __format__ = _refuse


class _BoundedNamespace(Namespace):
    """``namespace()`` whose attributes obey the same weight cap as any other value."""

    def __setitem__(self, name: str, value: Any) -> None:
        budget = CURRENT_BUDGET.get()
        if budget is not None:
            check_weight(value, budget.limits)
        super().__setitem__(name, value)


def _safe_range(*args: int) -> range:
    budget = CURRENT_BUDGET.get()
    cap = budget.limits.max_range if budget is not None else RenderLimits().max_range
    rng = range(*args)
    if len(rng) > cap:
        raise RenderLimitExceeded(f"range() of {len(rng)} items exceeds the limit of {cap}")
    return rng


# Methods a template may call on a string: none of them can grow the string past a small
# factor, except center/ljust/rjust/zfill/replace/join, which are prechecked in ``call``.
_STR_METHOD_NAMES = """
    capitalize casefold center count endswith find index isalnum isalpha isdecimal isdigit
    islower isnumeric isspace istitle isupper join ljust lower lstrip partition removeprefix
    removesuffix replace rfind rindex rjust rpartition rsplit rstrip split splitlines
    startswith strip swapcase title upper zfill
"""
_STR_METHODS = frozenset(_STR_METHOD_NAMES.split())
_ALLOWED_METHODS: tuple[tuple[type, frozenset[str]], ...] = (
    (str, _STR_METHODS),
    (dict, frozenset({"get", "items", "keys", "values"})),
    (list, frozenset({"index", "count"})),
    (tuple, frozenset({"index", "count"})),
    (LoopContext, frozenset({"cycle", "changed"})),
    (date, frozenset({"isoformat", "weekday", "isoweekday"})),
)
_CALLABLE_OBJECTS = (Macro, LoopContext, BlockReference)


class HardenedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox described in the module docstring. One per (limits, autoescape)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, limits: RenderLimits, *, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=StrictUndefined, finalize=self._finalize)
        self.limits = limits
        self.code_generator_class = _GuardedCodeGenerator
        self.globals.clear()
        own: dict[str, Callable[..., Any]] = {
            "range": _safe_range,
            "dict": dict,
            "namespace": _BoundedNamespace,
        }
        self._own_callables = frozenset(id(f) for f in own.values())
        self.globals.update({name: _OpaqueCallable(f) for name, f in own.items()})
        self.filters = {
            name: self._guard_filter(name, f)
            for name, f in self.filters.items()
            if name != "random"
        }

    # --- hooks the compiled template calls -----------------------------------------------

    def clm_guard_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Wraps every ``{% for %}`` iterable: one step per iteration."""
        for item in iterable:
            tick()
            yield item

    def clm_join(self, values: Sequence[Any], markup: bool) -> str:
        """``a ~ b``: check the joined size before joining."""
        tick()
        parts = [soft_str(v) for v in values]
        check_len(sum(len(p) for p in parts), self.limits)
        if markup and any(hasattr(p, "__html__") for p in parts):
            return Markup("").join(parts)  # escapes the plain parts, as markup_join does
        return "".join(parts)

    def clm_container(self, value: Any) -> Any:
        """A list, tuple or dict literal: cap its weight."""
        check_weight(value, self.limits)
        return value

    def concat(self, parts: Iterable[str]) -> str:
        """Joins the output of macros, blocks and ``{% set %}`` blocks."""
        collected = list(parts)
        check_len(sum(len(p) for p in collected), self.limits)
        return "".join(collected)

    # --- sandbox overrides -----------------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return not isinstance(obj, _OpaqueCallable) and super().is_safe_attribute(obj, attr, value)

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, _OpaqueCallable):
            return self.unsafe_undefined(obj, attribute)
        return _hide_callable(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, _OpaqueCallable):
            return self.unsafe_undefined(obj, str(argument))
        return _hide_callable(super().getitem(obj, argument))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        tick()
        target = obj._target if isinstance(obj, _OpaqueCallable) else obj
        self._check_callable(target)
        args = self._precheck_method(target, args)
        return self._sanitize(super().call(context, target, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        if operator == "*":
            check_repeat(left, right, self.limits)
        elif operator == "**":
            check_power(left, right, self.limits)
        elif operator == "%" and isinstance(left, str):
            check_percent(left, right, self.limits)
        elif operator == "+" and _is_sized(left) and _is_sized(right):
            check_len(len(left) + len(right), self.limits)
        return self._sanitize(self.binop_table[operator](left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """``str.format``/``format_map`` through a formatter that counts what it writes."""
        if not isinstance(value, types.BuiltinMethodType | types.MethodType) or (
            value.__name__ not in ("format", "format_map")
        ):
            return None
        fmt: Any = value.__self__
        if not isinstance(fmt, str):
            return None
        check_format_specs(fmt, self.limits)
        formatter: SandboxedFormatter = (
            _CountingEscapeFormatter(self, escape=fmt.escape)
            if isinstance(fmt, Markup)
            else _CountingFormatter(self)
        )
        is_map = value.__name__ == "format_map"

        def formatted(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                return type(fmt)(formatter.vformat(fmt, (), args[0]))
            return type(fmt)(formatter.vformat(fmt, args, kwargs))

        formatted.clm_safe = True  # type: ignore[attr-defined]
        return formatted

    # --- checks ----------------------------------------------------------------------------

    @pass_eval_context
    def _finalize(self, eval_ctx: EvalContext, value: Any) -> Any:
        """What ``{{ … }}`` may print: data, never objects. ``None`` prints as nothing.

        Taking the eval context stops Jinja from finalizing constants at compile time, where
        it would escape ``None`` to ``"None"`` before this function could see it.
        """
        if isinstance(value, Undefined):
            return str(value)  # StrictUndefined raises here with a useful message
        if value is None:
            return ""
        if isinstance(value, str | int | float | Decimal | date):
            return value
        if isinstance(value, list | tuple | dict) and _is_plain(value, depth=8):
            return value
        if isinstance(value, _OpaqueCallable):
            value._refuse()
        raise SecurityError(f"a {type(value).__name__} value cannot be output")

    def _check_callable(self, target: Any) -> None:
        if id(target) in self._own_callables or isinstance(target, _CALLABLE_OBJECTS):
            return
        if isinstance(target, Undefined) or getattr(target, "clm_safe", False):
            return  # calling an undefined value raises the usual UndefinedError
        if getattr(target, "__self__", None) is self and target.__name__ == "clm_guard_iter":
            return
        owner = getattr(target, "__self__", None)
        if isinstance(target, types.MethodType | types.BuiltinMethodType) and not isinstance(
            owner, types.ModuleType | type | None
        ):
            for kind, names in _ALLOWED_METHODS:
                if isinstance(owner, kind) and target.__name__ in names:
                    return
        name = getattr(target, "__name__", type(target).__name__)
        raise SecurityError(f"calling {name!r} is not allowed in templates")

    def _precheck_method(self, target: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
        owner = getattr(target, "__self__", None)
        if not isinstance(owner, str):  # str and Markup (whose methods are Python functions)
            return args
        name = getattr(target, "__name__", "")
        if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
            check_len(args[0], self.limits)
        elif name == "replace" and len(args) >= 2:
            count = args[2] if len(args) > 2 and isinstance(args[2], int) else -1
            check_len(replaced_len(owner, str(args[0]), str(args[1]), count), self.limits)
        elif name == "join" and args:
            items = take(args[0], self.limits)
            check_len(joined_len(items, owner), self.limits)
            return (items, *args[1:])
        return args

    def _sanitize(self, value: Any) -> Any:
        check_weight(value, self.limits)
        return _hide_callable(value)

    # --- filters ---------------------------------------------------------------------------

    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a built-in filter: a step, argument prechecks, a size check of the result."""
        skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0
        precheck = FILTER_PRECHECKS.get(name)

        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            tick()
            if precheck is not None:
                head, params = list(args[:skip]), list(args[skip:])
                precheck(self, self.limits, params, kwargs)
                args = (*head, *params)
            return self._sanitize(func(*args, **kwargs))

        return guarded


class _CountingFormatter(SandboxedFormatter):
    """``str.format`` that refuses to produce more than ``max_output`` characters."""

    def __init__(self, env: HardenedEnvironment, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._hardened = env
        self._written = 0

    def vformat(self, format_string: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
        self._written = len(format_string)
        return super().vformat(format_string, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> Any:
        text = super().format_field(value, format_spec)
        self._written += len(text)
        check_len(self._written, self._hardened.limits)
        return text


class _CountingEscapeFormatter(_CountingFormatter, EscapeFormatter):
    pass


class _GuardedCodeGenerator(CodeGenerator):
    """Routes loops, ``~`` and container literals through the environment's checks."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        guard = nodes.EnvironmentAttribute("clm_guard_iter", lineno=node.lineno)
        node.iter = nodes.Call(guard, [node.iter], [], None, None, lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            markup = "context.eval_ctx.autoescape"
        else:
            markup = repr(bool(frame.eval_ctx.autoescape))
        self.write("environment.clm_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(f"), {markup})")

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self.write("environment.clm_container(")
        super().visit_List(node, frame)
        self.write(")")

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self.write("environment.clm_container(")
        super().visit_Dict(node, frame)
        self.write(")")

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx != "load":
            super().visit_Tuple(node, frame)
            return
        self.write("environment.clm_container(")
        super().visit_Tuple(node, frame)
        self.write(")")


# --- helpers ---------------------------------------------------------------------------------


def _hide_callable(value: Any) -> Any:
    if callable(value) and not isinstance(value, Undefined | _OpaqueCallable | Markup):
        return _OpaqueCallable(value)
    return value


def _is_sized(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _is_plain(value: Any, depth: int) -> bool:
    if isinstance(value, str | int | float | Decimal | date) or value is None:
        return True
    if depth <= 0:
        return False
    if isinstance(value, dict):
        return all(_is_plain(k, depth - 1) and _is_plain(v, depth - 1) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_is_plain(v, depth - 1) for v in value)
    return False
