"""The rule editor's and the send policy's forms: to and from the API's JSON, and where each
of the API's error messages goes (pure).

The rule form has a field per scalar (key, name, trigger, re-entry, …) and a JSON box per
list (conditions, steps, exits). Each ``loc`` of a 422 names a field; a message whose
location lies inside a box keeps that location (``steps.1.wait: …``), so the person sees
which item is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from services.console.formats import pretty

Errors = dict[str, list[str]]

TRIGGER_TYPES: Final = ("event", "stage_entered", "stage_changed", "inactivity")
CHANNELS: Final = ("email", "sms", "push", "webhook")

#: Rule form fields that hold JSON lists, and the rule key each fills.
_RULE_LISTS: Final = {
    "trigger_where": ("trigger", "where"),
    "audience": ("audience",),
    "steps": ("steps",),
    "exit_when": ("exit_when",),
    "goal_where": ("goal", "where"),
}
#: ``loc`` prefix → form field, most specific first.
_RULE_FIELDS: Final = (
    ("trigger.where", "trigger_where"),
    ("trigger.event", "trigger_event"),
    ("trigger.stage", "trigger_stage"),
    ("trigger.from", "trigger_from"),
    ("trigger.to", "trigger_to"),
    ("trigger.for", "trigger_for"),
    ("trigger", "trigger_type"),
    ("goal.where", "goal_where"),
    ("goal.within", "goal_within"),
    ("goal", "goal_event"),
    ("audience", "audience"),
    ("steps", "steps"),
    ("exit_when", "exit_when"),
    ("key", "key"),
    ("name", "name"),
    ("enabled", "enabled"),
    ("reentry", "reentry"),
    ("holdout_percent", "holdout_percent"),
    ("max_event_age", "max_event_age"),
)
_POLICY_FIELDS: Final = (
    ("caps", "caps"),
    ("quiet_hours.start", "quiet_start"),
    ("quiet_hours.end", "quiet_end"),
    ("quiet_hours.channels", "quiet_channels"),
    ("quiet_hours", "quiet_start"),
    ("default_timezone", "default_timezone"),
    *((f"consent.{c}", f"consent_{c}") for c in CHANNELS),
)
_BOXES: Final = frozenset({*_RULE_LISTS, "caps"})


def _field_of(loc: str, table: tuple[tuple[str, str], ...]) -> str:
    for prefix, name in table:
        if loc == prefix or loc.startswith(prefix + "."):
            return name
    return ""


def place(api_errors: Mapping[str, list[str]], table: tuple[tuple[str, str], ...]) -> Errors:
    """The API's messages by form field ("" = about the whole form)."""
    placed: Errors = {}
    for loc, messages in api_errors.items():
        name = _field_of(loc, table)
        for message in messages:
            shown = f"{loc}: {message}" if name in _BOXES and loc != name else message
            placed.setdefault(name, []).append(shown)
    return placed


def place_rule_errors(api_errors: Mapping[str, list[str]]) -> Errors:
    return place(api_errors, _RULE_FIELDS)


def place_policy_errors(api_errors: Mapping[str, list[str]]) -> Errors:
    return place(api_errors, _POLICY_FIELDS)


def _text(form: Mapping[str, str], name: str) -> str:
    return (form.get(name) or "").strip()


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _json_box(form: Mapping[str, str], name: str, errors: Errors, *, kind: type) -> Any:
    raw = _text(form, name)
    if not raw:
        return kind()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        errors.setdefault(name, []).append(
            f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        )
        return kind()
    if not isinstance(value, kind):
        shape = "a list [...]" if kind is list else "an object {...}"
        errors.setdefault(name, []).append(f"must be {shape}")
        return kind()
    return value


def _number(form: Mapping[str, str], name: str, errors: Errors) -> float | int | None:
    raw = _text(form, name)
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        errors.setdefault(name, []).append(f"must be a number, got {raw!r}")
        return None
    return int(value) if value.is_integer() else value


def rule_from_form(form: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    """The rule body the form describes, and the problems found before asking the API
    (a JSON box that does not parse)."""
    errors: Errors = {}
    kind = _text(form, "trigger_type") or "event"
    trigger: dict[str, Any] = {"type": kind}
    if kind in ("event", "inactivity"):
        trigger["event"] = _text(form, "trigger_event")
    if kind == "event":
        trigger["where"] = _json_box(form, "trigger_where", errors, kind=list)
    if kind == "inactivity":
        trigger["for"] = _text(form, "trigger_for")
    if kind == "stage_entered":
        trigger["stage"] = _text(form, "trigger_stage")
    if kind == "stage_changed":
        trigger["from"] = _names(_text(form, "trigger_from"))
        trigger["to"] = _names(_text(form, "trigger_to"))
    body: dict[str, Any] = {
        "key": _text(form, "key"),
        "name": _text(form, "name"),
        "enabled": form.get("enabled") in ("on", "true", "1"),
        "trigger": trigger,
        "audience": _json_box(form, "audience", errors, kind=list),
        "steps": _json_box(form, "steps", errors, kind=list),
        "exit_when": _json_box(form, "exit_when", errors, kind=list),
        "reentry": _text(form, "reentry") or None,
    }
    holdout = _number(form, "holdout_percent", errors)
    if holdout is not None:
        body["holdout_percent"] = holdout
    goal_event = _text(form, "goal_event")
    if goal_event or _text(form, "goal_within"):
        body["goal"] = {
            "event": goal_event,
            "within": _text(form, "goal_within"),
            "where": _json_box(form, "goal_where", errors, kind=list),
        }
    max_age = _text(form, "max_event_age")
    if max_age:
        body["max_event_age"] = max_age
    return body, errors


def _box(value: Any) -> str:
    return pretty(value) if value else ""


def form_from_rule(rule: Mapping[str, Any]) -> dict[str, str]:
    """The form's values for a stored rule (or an example)."""
    trigger: Mapping[str, Any] = rule.get("trigger") or {}
    goal: Mapping[str, Any] = rule.get("goal") or {}
    holdout = rule.get("holdout_percent")
    return {
        "key": str(rule.get("key", "")),
        "name": str(rule.get("name", "")),
        "enabled": "on" if rule.get("enabled", True) else "",
        "trigger_type": str(trigger.get("type", "event")),
        "trigger_event": str(trigger.get("event", "")),
        "trigger_stage": str(trigger.get("stage", "")),
        "trigger_from": ", ".join(trigger.get("from") or []),
        "trigger_to": ", ".join(trigger.get("to") or []),
        "trigger_for": str(trigger.get("for", "")),
        "trigger_where": _box(trigger.get("where")),
        "audience": _box(rule.get("audience")),
        "steps": _box(rule.get("steps")),
        "exit_when": _box(rule.get("exit_when")),
        "reentry": str(rule.get("reentry") or ""),
        "holdout_percent": "" if not holdout else str(holdout),
        "goal_event": str(goal.get("event", "")),
        "goal_within": str(goal.get("within", "")),
        "goal_where": _box(goal.get("where")),
        "max_event_age": str(rule.get("max_event_age") or ""),
    }


NEW_RULE: Final[dict[str, Any]] = {
    "key": "",
    "name": "",
    "enabled": False,
    "trigger": {"type": "event", "event": "Product Added"},
    "steps": [{"wait": "PT1H"}, {"send": {"channel": "email", "template": "cart_reminder"}}],
    "exit_when": [{"event": "Order Completed"}],
    "reentry": "P7D",
}


def policy_from_form(form: Mapping[str, str]) -> tuple[dict[str, Any], Errors]:
    errors: Errors = {}
    body: dict[str, Any] = {
        "caps": _json_box(form, "caps", errors, kind=dict),
        "default_timezone": _text(form, "default_timezone") or "UTC",
        "consent": {c: _text(form, f"consent_{c}") or "opt_out" for c in CHANNELS},
        "quiet_hours": None,
    }
    start, end = _text(form, "quiet_start"), _text(form, "quiet_end")
    if start or end:
        quiet: dict[str, Any] = {"start": start, "end": end}
        channels = _names(_text(form, "quiet_channels"))
        if channels:
            quiet["channels"] = channels
        body["quiet_hours"] = quiet
    return body, errors


def form_from_policy(policy: Mapping[str, Any]) -> dict[str, str]:
    quiet: Mapping[str, Any] = policy.get("quiet_hours") or {}
    consent: Mapping[str, Any] = policy.get("consent") or {}
    return {
        "caps": _box(policy.get("caps")),
        "quiet_start": str(quiet.get("start", ""))[:5],
        "quiet_end": str(quiet.get("end", ""))[:5],
        "quiet_channels": ", ".join(quiet.get("channels") or []),
        "default_timezone": str(policy.get("default_timezone", "UTC")),
        **{f"consent_{c}": str(consent.get(c, "opt_out")) for c in CHANNELS},
    }
