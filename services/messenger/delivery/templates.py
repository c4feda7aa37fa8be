"""Optional managed templates: render a subject, a text and an HTML body for one customer.

Templates are Jinja2, written by shop admins, rendered in the hardened sandbox of
:mod:`.sandbox` (resource budget, size caps, no callables in the output). ``html`` autoescapes;
``subject`` and ``text`` do not. Undefined variables are errors (``StrictUndefined``): a typo
should fail the render visibly, not send an email with a blank where the name was — use
``{{ x | default('') }}`` or ``{% if x is defined %}`` for optional data.

:func:`render` never raises for anything a template does: a broken or hostile template comes
back as a :class:`RenderError` value, like any other terminal outcome of a delivery.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

from jinja2 import Template, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .sandbox import HardenedEnvironment
from .template_limits import CURRENT_BUDGET, RenderLimitExceeded, RenderLimits, new_budget

MAX_SOURCE_CHARS = 64 * 1024
DEFAULT_LIMITS = RenderLimits()

Part = Literal["subject", "text", "html"]
ErrorKind = Literal["syntax", "undefined", "security", "limit", "runtime"]

_PARTS: tuple[Part, ...] = ("subject", "text", "html")
# Last line of defence: Python and Jinja reprs (possibly escaped) that must never reach a
# customer, whatever conversion path (|string, ~, %, format) produced them.
_LEAK = re.compile(
    r"(?:<|&lt;|&#60;)(?:(?:class|module|enum) (?:'|&#39;|&#x27;)"
    r"|(?:built-in function|built-in method|bound method|function|method-wrapper|slot wrapper"
    r"|generator object|TemplateReference|LoopContext|Macro|Namespace|BlockReference) "
    r"|jinja2\.)"
    r"|\bat 0x[0-9a-fA-F]{4,}(?:>|&gt;)"
)
_WHITESPACE = re.compile(r"\s+")
_QUALIFIED = re.compile(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*) object")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class TemplateSource(BaseModel):
    """A managed template: any of the three parts, each Jinja2 source."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)
    text: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)
    html: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)

    @model_validator(mode="after")
    def _at_least_one_part(self) -> Self:
        if self.subject is None and self.text is None and self.html is None:
            raise ValueError("a template needs at least one of subject, text, html")
        return self


@dataclass(frozen=True, slots=True)
class Rendered:
    """The rendered parts (``None`` where the template has no such part).

    ``subject`` is collapsed to one line, so it is safe to put in a mail header.
    """

    subject: str | None
    text: str | None
    html: str | None


@dataclass(frozen=True, slots=True)
class RenderError:
    """Why a template could not be rendered, and in which part."""

    part: Part
    kind: ErrorKind
    message: str


class TemplateRenderer:
    """Renders templates under fixed limits; compiled templates are cached by source."""

    def __init__(self, limits: RenderLimits = DEFAULT_LIMITS, *, cache_size: int = 256) -> None:
        self.limits = limits
        self._envs = {
            autoescape: HardenedEnvironment(limits, autoescape=autoescape)
            for autoescape in (False, True)
        }
        self._compile: Callable[[str, bool], Template] = functools.lru_cache(cache_size)(
            self._compile_uncached
        )

    def render(
        self,
        template: TemplateSource,
        context: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> Rendered | RenderError:
        """Render every part present; the first failing part's error is returned."""
        out: dict[Part, str | None] = {}
        token = CURRENT_BUDGET.set(new_budget(self.limits, clock))
        try:
            for part in _PARTS:
                source: str | None = getattr(template, part)
                if source is None:
                    out[part] = None
                    continue
                result = self._render_part(part, source, context)
                if isinstance(result, RenderError):
                    return result
                out[part] = result
        finally:
            CURRENT_BUDGET.reset(token)
        subject = out["subject"]
        if subject is not None:
            subject = _WHITESPACE.sub(" ", subject).strip()
        return Rendered(subject=subject, text=out["text"], html=out["html"])

    def _render_part(
        self, part: Part, source: str, context: Mapping[str, Any]
    ) -> str | RenderError:
        try:
            compiled = self._compile(source, part == "html")
            chunks: list[str] = []
            size = 0
            for chunk in compiled.generate(dict(context)):
                size += len(chunk)
                if size > self.limits.max_output:
                    return RenderError(
                        part, "limit", f"output exceeds {self.limits.max_output} characters"
                    )
                chunks.append(chunk)
        except Exception as exc:  # a template must never take the worker down
            return _error(part, exc)
        text = "".join(chunks)
        if _LEAK.search(text):
            return RenderError(part, "security", "output would expose Python object internals")
        return text

    def _compile_uncached(self, source: str, html: bool) -> Template:
        if len(source) > MAX_SOURCE_CHARS:
            raise RenderLimitExceeded(f"template source exceeds {MAX_SOURCE_CHARS} characters")
        return self._envs[html].from_string(source)


@functools.lru_cache(maxsize=8)
def _renderer(limits: RenderLimits) -> TemplateRenderer:
    return TemplateRenderer(limits)


def render(
    template: TemplateSource,
    context: Mapping[str, Any],
    *,
    limits: RenderLimits = DEFAULT_LIMITS,
    clock: Callable[[], float] = time.monotonic,
) -> Rendered | RenderError:
    """Render ``template`` with ``context`` (plain data: dicts, lists, strings, numbers)."""
    return _renderer(limits).render(template, context, clock=clock)


def _error(part: Part, exc: BaseException) -> RenderError:
    kind: ErrorKind
    if isinstance(exc, TemplateSyntaxError):
        kind, message = "syntax", f"line {exc.lineno}: {exc.message}"
    elif isinstance(exc, RenderLimitExceeded | MemoryError | RecursionError):
        kind, message = "limit", str(exc) or type(exc).__name__
    elif isinstance(exc, SecurityError):
        kind, message = "security", str(exc)
    elif isinstance(exc, UndefinedError):
        kind, message = "undefined", str(exc)
    else:
        kind, message = "runtime", f"{type(exc).__name__}: {exc}"
    # Messages name types as 'module.path.Type object' and sometimes show reprs: keep only the
    # type name, and drop addresses, so not even an admin sees interpreter internals.
    message = _QUALIFIED.sub(r"\1 object", message)
    message = _ADDRESS.sub("", message)
    return RenderError(part, kind, message[:500])
