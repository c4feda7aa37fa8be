"""Rule validation with precise locations: structure (pydantic) plus meaning.

:func:`parse_rule` is what the ops API calls. Every problem comes back as a
:class:`RuleIssue` with a ``loc`` (path into the submitted JSON, e.g.
``("steps", 3, "send", "offer", "expires_in")``) and a message a marketer can act on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from datetime import timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, ValidationError

from .conditions import Condition
from .durations import format_duration
from .lifecycle import DEFAULT_STAGE_NAMES
from .rules import (
    TRIGGER_FIELDS,
    EventTrigger,
    InactivityTrigger,
    Rule,
    SendStep,
    StageChangedTrigger,
    StageEnteredTrigger,
    WaitStep,
)

Loc = tuple[str | int, ...]

#: Timers further out than this are refused: nothing after such a wait would ever run
#: within the life of a rule version, and it is almost always a typo (P365D for PT365S).
MAX_WAIT: Final = timedelta(days=365)

_TAGS: Final = frozenset({*(f"{t}_trigger" for t in TRIGGER_FIELDS), "wait_step", "send_step"})


class RuleIssue(BaseModel):
    model_config = ConfigDict(frozen=True)

    loc: Loc
    message: str

    def __str__(self) -> str:
        where = ".".join(str(part) for part in self.loc) or "rule"
        return f"{where}: {self.message}"


class RuleError(ValueError):
    """The rule is invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[RuleIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


def parse_rule(data: Any, *, stages: Collection[str] = DEFAULT_STAGE_NAMES) -> Rule:
    """Validate ``data`` into a :class:`Rule` or raise :class:`RuleError`."""
    try:
        rule = Rule.model_validate(data)
    except ValidationError as exc:
        raise RuleError(_from_pydantic(exc, data)) from None
    issues = check_rule(rule, stages=stages)
    if issues:
        raise RuleError(issues)
    return rule


def _from_pydantic(exc: ValidationError, data: Any) -> list[RuleIssue]:
    issues: list[RuleIssue] = []
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(part for part in error["loc"] if part not in _TAGS)
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden" and len(loc) == 2 and loc[0] == "trigger":
            kind = data.get("trigger", {}).get("type") if isinstance(data, dict) else None
            allowed = ", ".join(TRIGGER_FIELDS.get(str(kind), ()))
            message = (
                f"field {loc[1]!r} does not belong to trigger type {kind!r} (allowed: {allowed})"
            )
        elif error["type"] == "extra_forbidden":
            message = f"unknown field {loc[-1]!r}"
        issues.append(RuleIssue(loc=loc, message=message))
    return issues


def check_rule(rule: Rule, *, stages: Collection[str] = DEFAULT_STAGE_NAMES) -> list[RuleIssue]:
    """Problems a structurally valid rule can still have, each with its location."""
    return [
        *_check_trigger(rule, stages),
        *_check_audience(rule, stages),
        *_check_steps(rule),
        *_check_durations(rule),
    ]


def _check_trigger(rule: Rule, stages: Collection[str]) -> Iterator[RuleIssue]:
    trigger = rule.trigger
    known = ", ".join(stages)
    if isinstance(trigger, StageEnteredTrigger) and trigger.stage not in stages:
        yield RuleIssue(
            loc=("trigger", "stage"), message=f"unknown stage {trigger.stage!r} (known: {known})"
        )
    if isinstance(trigger, StageChangedTrigger):
        for field, names in (("from", trigger.from_), ("to", trigger.to)):
            for index, name in enumerate(names):
                if name not in stages:
                    yield RuleIssue(
                        loc=("trigger", field, index),
                        message=f"unknown stage {name!r} (known: {known})",
                    )
    if isinstance(trigger, InactivityTrigger) and trigger.for_ <= timedelta(0):
        yield RuleIssue(loc=("trigger", "for"), message="must be longer than zero")
    if isinstance(trigger, EventTrigger):
        yield from _check_conditions(trigger.where, ("trigger", "where"), stages)


def _check_conditions(
    conditions: Sequence[Condition],
    loc: Loc,
    stages: Collection[str],
    *,
    profile_only: bool = False,
) -> Iterator[RuleIssue]:
    for index, condition in enumerate(conditions):
        if profile_only and condition.root != "profile":
            yield RuleIssue(
                loc=(*loc, index, "path"),
                message=f"audience conditions look at the customer: use 'profile.*', "
                f"not {condition.path!r}",
            )
        if condition.path == "profile.stage" and condition.op in ("eq", "ne", "in", "not_in"):
            values = condition.value if isinstance(condition.value, list) else [condition.value]
            for value in values:
                if value not in stages:
                    yield RuleIssue(
                        loc=(*loc, index, "value"),
                        message=f"unknown stage {value!r} (known: {', '.join(stages)})",
                    )


def _stage_can_pass(condition: Condition, stage: str) -> bool:
    """Whether a ``profile.stage`` condition can hold while the customer is in ``stage``."""
    value = condition.value
    listed = isinstance(value, list) and stage in value
    if condition.op == "eq":
        return bool(stage == value)
    if condition.op == "ne":
        return bool(stage != value)
    if condition.op == "in":
        return listed
    if condition.op == "not_in":
        return not listed
    return True


def _check_audience(rule: Rule, stages: Collection[str]) -> Iterator[RuleIssue]:
    yield from _check_conditions(rule.audience, ("audience",), stages, profile_only=True)
    for index, exit_when in enumerate(rule.exit_when):
        yield from _check_conditions(exit_when.where, ("exit_when", index, "where"), stages)
    if rule.goal is not None:
        yield from _check_conditions(rule.goal.where, ("goal", "where"), stages)
    trigger = rule.trigger
    if isinstance(trigger, StageEnteredTrigger) and trigger.stage in stages:
        for index, condition in enumerate(rule.audience):
            if condition.path == "profile.stage" and not _stage_can_pass(condition, trigger.stage):
                yield RuleIssue(
                    loc=("audience", index),
                    message=f"excludes stage {trigger.stage!r}, the stage the trigger enters: "
                    "the rule can never start",
                )


def _check_steps(rule: Rule) -> Iterator[RuleIssue]:
    sends = [i for i, step in enumerate(rule.steps) if isinstance(step, SendStep)]
    if not sends:
        yield RuleIssue(loc=("steps",), message="the rule has no send step, so it never sends")
        return
    for index, step in enumerate(rule.steps):
        if not isinstance(step, WaitStep):
            continue
        if step.wait > MAX_WAIT and index < sends[-1]:
            yield RuleIssue(
                loc=("steps", index, "wait"),
                message=f"wait {format_duration(step.wait)} is longer than the longest allowed "
                f"({format_duration(MAX_WAIT)}); the steps after it (from steps[{index + 1}]) "
                "can never run",
            )
        elif step.wait > MAX_WAIT:
            yield RuleIssue(
                loc=("steps", index, "wait"),
                message=f"wait {format_duration(step.wait)} is longer than the longest allowed "
                f"({format_duration(MAX_WAIT)})",
            )
        if index > sends[-1]:
            yield RuleIssue(
                loc=("steps", index),
                message="a wait after the last send leads to nothing; remove it",
            )


def _check_durations(rule: Rule) -> Iterator[RuleIssue]:
    if rule.goal is not None and rule.goal.within <= timedelta(0):
        yield RuleIssue(loc=("goal", "within"), message="must be longer than zero")
    for index, step in enumerate(rule.steps):
        offer = step.send.offer if isinstance(step, SendStep) else None
        if offer is not None and offer.expires_in is not None and offer.expires_in <= timedelta(0):
            yield RuleIssue(
                loc=("steps", index, "send", "offer", "expires_in"),
                message="an offer must not expire the moment it is sent",
            )
