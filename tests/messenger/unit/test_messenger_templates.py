"""Managed templates: rendering, limits, and an injection corpus that must fail safely."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.messenger.delivery.template_limits import RenderLimits
from services.messenger.delivery.templates import (
    MAX_SOURCE_CHARS,
    Rendered,
    RenderError,
    TemplateRenderer,
    TemplateSource,
    render,
)

CONTEXT: dict[str, Any] = {
    "customer": {
        "id": "user-42",
        "email": "ada@example.com",
        "phone": None,
        "traits": {"first_name": "Ada", "vip": True},
        "stage": "prospect",
    },
    "cart": {
        "products": [
            {"name": "red shoe", "price": 49.5, "quantity": 2},
            {"name": "<script>alert(1)</script>", "price": 5, "quantity": 1},
        ]
    },
    "offer": None,
    "x": "abc",
}

# What must never appear in rendered output: Python reprs, addresses, module paths, Jinja
# internals, namespaces of functions.
OUTPUT_LEAK = re.compile(
    r"<(?:class|module|function|built-in|bound method|method-wrapper|slot wrapper)"
    r"|&lt;(?:class|function|built-in)|\bat 0x[0-9a-f]+|services\.messenger|jinja2|"
    r"TemplateReference|LoopContext|<Macro|Namespace \{|__globals__|__builtins__|__mro__\)"
)
# Error messages may name the attribute a template asked for, or a type, but never show a
# repr, an address, a module path or the contents of a namespace.
MESSAGE_LEAK = re.compile(
    r"<(?:class|module|function|built-in|bound method)|\bat 0x|jinja2\.|services\."
    r"|\{'__name__'|'__builtins__':"
)


def render_text(source: str, **kwargs: Any) -> Rendered | RenderError:
    return render(TemplateSource(text=source), CONTEXT, **kwargs)


def assert_harmless(result: Rendered | RenderError) -> None:
    if isinstance(result, RenderError):
        assert not MESSAGE_LEAK.search(result.message), result.message
        return
    for part in (result.subject, result.text, result.html):
        assert part is None or not OUTPUT_LEAK.search(part), part


# --- rendering ------------------------------------------------------------------------------


def test_renders_subject_text_and_html_from_the_action_context() -> None:
    template = TemplateSource(
        subject="Hi {{ customer.traits.first_name }},\r\n  your cart misses you",
        text=(
            "{% for p in cart.products %}{{ loop.index }}. {{ p.name }}"
            " x{{ p.quantity }} = {{ '%.2f'|format(p.price * p.quantity) }}\n{% endfor %}"
        ),
        html="<ul>{% for p in cart.products %}<li>{{ p.name }}</li>{% endfor %}</ul>",
    )
    result = render(template, CONTEXT)
    assert result == Rendered(
        subject="Hi Ada, your cart misses you",
        text="1. red shoe x2 = 99.00\n2. <script>alert(1)</script> x1 = 5.00\n",
        html=("<ul><li>red shoe</li><li>&lt;script&gt;alert(1)&lt;/script&gt;</li></ul>"),
    )


def test_only_present_parts_are_rendered() -> None:
    result = render(TemplateSource(html="<p>{{ customer.email }}</p>"), CONTEXT)
    assert result == Rendered(subject=None, text=None, html="<p>ada@example.com</p>")


def test_none_prints_as_nothing() -> None:
    assert render_text("[{{ offer }}][{{ customer.phone }}]") == Rendered(None, "[][]", None)


def test_safe_methods_and_filters_work() -> None:
    source = (
        "{{ x.upper() }}|{{ '{:>5}'.format(3) }}|{{ customer.traits.items()|list|length }}|"
        "{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{% endfor %}|"
        "{{ cart.products|map(attribute='name')|join(', ') }}|{{ 'a-b'.split('-') }}|"
        "{{ customer.traits|tojson }}"
    )
    result = render_text(source)
    assert isinstance(result, Rendered), result
    assert result.text == (
        "ABC|    3|2|aba|red shoe, <script>alert(1)</script>|['a', 'b']|"
        '{"first_name": "Ada", "vip": true}'
    )


def test_a_missing_variable_is_an_error_not_a_blank() -> None:
    result = render(TemplateSource(subject="ok", html="Hi {{ customer.nmae }}"), CONTEXT)
    assert isinstance(result, RenderError)
    assert (result.part, result.kind) == ("html", "undefined")
    assert "nmae" in result.message


def test_optional_data_uses_default_or_is_defined() -> None:
    source = "{{ customer.traits.city|default('somewhere') }}{% if offer is defined %}!{% endif %}"
    assert render_text(source) == Rendered(None, "somewhere!", None)


def test_syntax_errors_name_the_line() -> None:
    result = render_text("line one\n{% for x in %}")
    assert isinstance(result, RenderError)
    assert result.kind == "syntax"
    assert result.message.startswith("line 2:")


def test_include_extends_and_import_have_nothing_to_load() -> None:
    for source in ("{% include 'x' %}", "{% extends 'x' %}", "{% import 'x' as y %}"):
        result = render_text(source)
        assert isinstance(result, RenderError)
        assert result.kind == "runtime"


def test_template_source_needs_a_part_and_has_a_size_cap() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        TemplateSource()
    with pytest.raises(ValidationError, match="at most"):
        TemplateSource(text="x" * (MAX_SOURCE_CHARS + 1))


# --- limits ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{% for i in range(10**9) %}x{% endfor %}", "range() of 1000000000 items"),
        ("{{ 'a' * 10**9 }}", "repetition"),
        ("{{ [0] * 10**9 }}", "repetition"),
        ("{{ 9 ** 999999 }}", "bits"),
        ("{{ (10**1000) * (10**1000) }}", "bits"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "steps",
        ),
        ("{% for i in range(10000) %}{{ 'x' * 100 }}{% endfor %}", "output exceeds"),
        ("{% set s = 'a' * 200000 %}{{ s ~ s }}", "exceeds the limit"),
        ("{% set s = 'a' * 200000 %}{{ [s, s, s] }}", "collection"),
        ("{% set s = 'a' * 200000 %}{{ [s, s]|join }}", "collection"),
        ("{{ range(10000)|join('x' * 100) }}", "exceeds the limit"),
        ("{{ 'a'|center(10**9) }}", "exceeds the limit"),
        ("{{ 'a'.ljust(10**9) }}", "exceeds the limit"),
        ("{{ ('a'|safe).center(10**9) }}", "exceeds the limit"),
        ("{{ (('a' * 1000)|safe).join(range(1000)|map('string')|list) }}", "exceeds the limit"),
        ("{{ (('a' * 1000)|safe).replace('', 'x' * 1000) }}", "exceeds the limit"),
        ("{{ ('a' * 1000).replace('', 'x' * 1000) }}", "exceeds the limit"),
        ("{{ ('a ' * 100000)|replace(' ', 'x' * 100) }}", "exceeds the limit"),
        ("{{ ('a\n' * 100000)|indent(100) }}", "exceeds the limit"),
        ("{{ 'a'|wordwrap(1, wrapstring='x' * 100) }}", "wrapstring"),
        ("{{ range(10)|batch(10**9)|list }}", "linecount"),
        ("{{ [1]|slice(10**9)|list }}", "slices"),
        ("{{ {'a': 1}|tojson(indent=10**6) }}", "indent"),
        ("{{ '%999999999d' % 1 }}", "width"),
        ("{{ '%*d' % (10**9, 1) }}", "'*' widths"),
        ("{{ '%0999999999d'|format(1) }}", "width"),
        ("{{ '{:>999999999}'.format(1) }}", "width"),
        ("{{ '{:{w}}'.format(1, w=10**9) }}", "nested"),
        ("{% set s = 'a' * 100000 %}{{ '{0}{0}{0}{0}'.format(s) }}", "exceeds the limit"),
        ("{% set s = 'a' * 100000 %}{{ '%(a)s%(a)s%(a)s' % {'a': s} }}", "exceeds the limit"),
        (
            "{% macro f(s, n) %}{% if n %}{{ f(s ~ s, n - 1) }}{% endif %}{% endmacro %}"
            "{{ f('a', 40) }}",
            "exceeds the limit",
        ),
        (
            "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
            "exceeds the limit",
        ),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
        ("{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}", "recursion"),
        ("{{ [[1]|sum(start=[])] }}", "start must be a number"),
        ("{{ ('a ' * 100000)|urlize }}", "urlize input"),
        ("{{ ('a ' * 100000).split() }}", "more than 10000 items"),
    ],
)
def test_resource_abuse_is_a_limit_error(source: str, words: str) -> None:
    started = time.perf_counter()
    result = render_text(source)
    elapsed = time.perf_counter() - started
    assert isinstance(result, RenderError), result
    assert result.kind in ("limit", "security"), result
    assert words in result.message
    assert elapsed < 2.0


def test_the_deadline_stops_a_slow_render() -> None:
    ticks = iter(range(1_000_000))

    def clock() -> float:  # a clock that advances 0.1 s whenever it is read
        return next(ticks) / 10

    result = render_text("{% for i in range(100) %}{{ i }}{% endfor %}", clock=clock)
    assert isinstance(result, RenderError)
    assert result.kind == "limit"
    assert "longer than 1s" in result.message


def test_the_budget_is_per_render_and_shared_by_the_parts() -> None:
    busy = "{% for i in range(200) %}{% for j in range(200) %}{% endfor %}{% endfor %}"
    assert isinstance(render_text(busy), Rendered)
    assert isinstance(render_text(busy), Rendered)  # a second render starts afresh
    everything = render(TemplateSource(subject=busy, text=busy, html=busy), CONTEXT)
    assert isinstance(everything, RenderError)
    assert (everything.part, everything.kind) == ("html", "limit")


def test_limits_are_configurable() -> None:
    small = RenderLimits(max_output=100, max_range=10)
    assert isinstance(render_text("{{ 'x' * 100 }}", limits=small), Rendered)
    assert isinstance(render_text("{{ 'x' * 101 }}", limits=small), RenderError)
    assert isinstance(render_text("{{ range(11)|list }}", limits=small), RenderError)
    renderer = TemplateRenderer(small)
    assert isinstance(renderer.render(TemplateSource(text="{{ range(10)|sum }}"), {}), Rendered)


# --- injection corpus -----------------------------------------------------------------------

INJECTIONS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__()[0].__init__.__globals__ }}",
    "{{ x|attr('format') }}",
    "{{ x|attr('format')|string }}",
    "{{ x|attr('__class__') }}",
    "{{ ''|attr('__class__') }}",
    "{{ (x|attr('__class__'))|attr('__mro__') }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum(10**6) }}",
    "{{ range.__globals__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__dict__ }}",
    "{{ self }}",
    "{{ self|string }}",
    "{{ '' ~ self }}",
    "{{ '%s' % self }}",
    "{{ '{}'.format(self) }}",
    "{{ '{0.__class__}'.format(x) }}",
    "{{ '{0.__class__.__mro__}'.format(x) }}",
    "{{ '{0.upper}'.format(x) }}",
    "{{ '{0!r}'.format(x.upper) }}",
    "{{ '{a.__init__}'.format_map({'a': x}) }}",
    "{{ '%(__class__)s' % x }}",
    "{{ x.upper }}",
    "{{ x.upper|string }}",
    "{{ x.upper.__self__ }}",
    "{{ x.upper._target }}",
    "{{ range }}",
    "{{ range|string }}",
    "{{ dict }}",
    "{{ namespace }}",
    "{{ range(3) }}",
    "{% for i in range(2) %}{{ loop }}{{ loop|string }}{% endfor %}",
    "{% macro m() %}{% endmacro %}{{ m }}{{ m|string }}",
    "{% set ns = namespace(a=1) %}{{ ns|string }}",
    "{{ (1).to_bytes(10**9, 'big') }}",
    "{{ 'a'.translate({97: 'b' * 1000}) }}",
    "{{ 'a'.encode() }}",
    "{{ dict(a=1).fromkeys(range(10)) }}",
    "{{ [].append(1) }}",
    "{{ customer.traits.update({'vip': False}) }}",
    "{{ customer.traits.pop('vip') }}",
    "{{ x|map(attribute='__class__')|list }}",
    "{{ [x]|selectattr('__class__')|list }}",
    "{{ [x]|sum(attribute='__class__') }}",
    "{{ x|random }}",
    "{{ config }}{{ request }}",
    "{{ [].__class__.__base__ }}",
    "{{ ().__class__.__bases__[0] }}",
    "{{ x['__class__'] }}",
    "{{ x|attr('upper')|attr('__self__') }}",
    "{{ x.upper.__call__ }}",
    "{% set f = x.upper %}{{ f.__func__ }}",
    "{{ ('%s' * 10000) % ((1,) * 10000) }}",
    "{{ range(10000)|map('string')|join }}",
    "{{ range(10000)|list|pprint|length }}",
    "{% for a in range(100) %}{% for b in range(100) %}{{ a ~ b }}{% endfor %}{% endfor %}",
]


@pytest.mark.parametrize("source", INJECTIONS)
def test_injection_fails_safely_or_renders_harmlessly(source: str) -> None:
    for part in ("subject", "text", "html"):
        started = time.perf_counter()
        result = render(TemplateSource.model_validate({part: source}), CONTEXT)
        assert time.perf_counter() - started < 2.0
        assert_harmless(result)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ x|attr('format') }}",
        "{{ ''|attr('__class__') }}",
        "{{ self._TemplateReference__context }}",
        "{{ '{0.__class__}'.format(x) }}",
        "{{ x.upper|string }}",
        "{{ self|string }}",
        "{{ (1).to_bytes(2, 'big') }}",
        "{{ [].append(1) }}",
    ],
)
def test_reaching_for_internals_is_a_security_error(source: str) -> None:
    result = render_text(source)
    assert isinstance(result, RenderError)
    assert result.kind == "security", result


@pytest.mark.parametrize(
    "source", ["{{ cycler.__init__.__globals__ }}", "{{ lipsum.__globals__ }}", "{{ joiner }}"]
)
def test_risky_default_globals_are_gone(source: str) -> None:
    result = render_text(source)
    assert isinstance(result, RenderError)
    assert result.kind in ("undefined", "security")


FRAGMENTS = [
    "{{ x }}",
    "{{ customer.traits.first_name|upper }}",
    "{% for p in cart.products %}",
    "{% endfor %}",
    "{% if customer.traits.vip %}",
    "{% endif %}",
    "{{ ",
    " }}",
    "x.__class__",
    "|attr('__class__')",
    "'a' * 99999",
    "range(9999)",
    "|join",
    "~",
    "(",
    ")",
    "self",
    "loop",
    "text ",
    "{% set y = ",
    "%}",
    "{{ y }}",
    ".format(x)",
    "'{0}'",
    "|string",
    "[x, x, x]",
    "*",
    "**",
    "9",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
def test_arbitrary_templates_never_raise_and_never_leak(source: str) -> None:
    result = render(TemplateSource(text=source, html=source), CONTEXT)
    assert isinstance(result, Rendered | RenderError)
    assert_harmless(result)


def test_render_is_a_pure_function_of_its_inputs() -> None:
    source = "{{ customer.traits.first_name }} {{ cart.products|length }}"
    clock: Callable[[], float] = time.monotonic
    first = render_text(source, clock=clock)
    assert render_text(source, clock=clock) == first == Rendered(None, "Ada 2", None)


@pytest.mark.parametrize(
    "source", ["{{ x.upper|string }}", "{{ '' ~ range }}", "{{ '{}'.format(x.split) }}"]
)
def test_functions_cannot_be_turned_into_text(source: str) -> None:
    result = render_text(source)
    assert isinstance(result, RenderError)
    assert result.message == "functions and methods cannot be output or converted in templates"
