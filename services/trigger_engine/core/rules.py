"""The rule model of ``POST /v1/rules`` (see CONTRACT.md), structural validation only.

Cross-field checks that need the lifecycle model (unknown stage, unreachable steps, audience
that can never match) live in :mod:`.rule_checks`; call :func:`.rule_checks.parse_rule` to
get both with precise ``loc``/message pairs.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from .conditions import Condition
from .durations import Duration

Channel = Literal["email", "sms", "push", "webhook"]
TriggerType = Literal["event", "stage_entered", "stage_changed", "inactivity"]
TRIGGER_FIELDS: dict[str, tuple[str, ...]] = {
    "event": ("type", "event", "where"),
    "stage_entered": ("type", "stage"),
    "stage_changed": ("type", "from", "to"),
    "inactivity": ("type", "event", "for"),
}

#: Triggering events older than this (relative to ``now``) start nothing, by default.
DEFAULT_MAX_EVENT_AGE = timedelta(days=1)

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)


class EventTrigger(BaseModel):
    model_config = _STRICT
    type: Literal["event"] = "event"
    event: str = Field(min_length=1)
    where: list[Condition] = Field(default_factory=list)


class StageEnteredTrigger(BaseModel):
    model_config = _STRICT
    type: Literal["stage_entered"] = "stage_entered"
    stage: str = Field(min_length=1)


class StageChangedTrigger(BaseModel):
    """Empty ``from`` / ``to`` lists mean "any stage"."""

    model_config = _STRICT
    type: Literal["stage_changed"] = "stage_changed"
    from_: list[str] = Field(default_factory=list, alias="from")
    to: list[str] = Field(default_factory=list)


class InactivityTrigger(BaseModel):
    """Fires when ``event`` has not been seen ``for`` a duration since its last occurrence."""

    model_config = _STRICT
    type: Literal["inactivity"] = "inactivity"
    event: str = Field(min_length=1)
    for_: Duration = Field(alias="for")


def _trigger_tag(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    # A type that is not a string (a list, say: unhashable) is as unknown as a misspelt one.
    return f"{kind}_trigger" if isinstance(kind, str) and kind in TRIGGER_FIELDS else None


Trigger = Annotated[
    Annotated[EventTrigger, Tag("event_trigger")]
    | Annotated[StageEnteredTrigger, Tag("stage_entered_trigger")]
    | Annotated[StageChangedTrigger, Tag("stage_changed_trigger")]
    | Annotated[InactivityTrigger, Tag("inactivity_trigger")],
    Discriminator(
        _trigger_tag,
        custom_error_type="trigger_type",
        custom_error_message=(
            "unknown or missing trigger type; expected one of "
            "event, stage_entered, stage_changed, inactivity"
        ),
    ),
]


class Offer(BaseModel):
    """An incentive attached to a send; ``expires_in`` becomes an absolute ``expires_at``."""

    model_config = _STRICT
    code: str = Field(min_length=1)
    kind: Literal["discount", "free_delivery", "credit", "bonus", "gift"] | None = None
    value: float | None = None
    expires_in: Duration | None = None


class SendSpec(BaseModel):
    model_config = _STRICT
    channel: Channel
    template: str = Field(min_length=1)
    destination: str | None = Field(default=None, description="destination id; default by channel")
    offer: Offer | None = None


class WaitStep(BaseModel):
    model_config = _STRICT
    wait: Duration


class SendStep(BaseModel):
    model_config = _STRICT
    send: SendSpec


def _step_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = set(value)
        return "wait_step" if keys == {"wait"} else "send_step" if keys == {"send"} else None
    return "wait_step" if isinstance(value, WaitStep) else "send_step"


Step = Annotated[
    Annotated[WaitStep, Tag("wait_step")] | Annotated[SendStep, Tag("send_step")],
    Discriminator(
        _step_tag,
        custom_error_type="step_kind",
        custom_error_message='a step is either {"wait": "<duration>"} or {"send": {...}}',
    ),
]


class ExitWhen(BaseModel):
    model_config = _STRICT
    event: str = Field(min_length=1)
    where: list[Condition] = Field(default_factory=list)


class Goal(BaseModel):
    """Conversion: ``event`` (matching ``where``) within ``within`` of the run's start."""

    model_config = _STRICT
    event: str = Field(min_length=1)
    within: Duration
    where: list[Condition] = Field(default_factory=list)


class Rule(BaseModel):
    """One version of a trigger rule. ``version`` is assigned by the rule repository."""

    model_config = _STRICT

    key: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    name: str = Field(min_length=1, max_length=200)
    version: int = Field(default=1, ge=1)
    enabled: bool = True
    trigger: Trigger
    audience: list[Condition] = Field(default_factory=list)
    steps: list[Step] = Field(min_length=1)
    exit_when: list[ExitWhen] = Field(default_factory=list)
    reentry: Duration | None = Field(default=None, description="null = once ever")
    holdout_percent: float = Field(default=0, ge=0, le=100)
    goal: Goal | None = None
    max_event_age: Duration = DEFAULT_MAX_EVENT_AGE

    @field_validator("reentry", "max_event_age")
    @classmethod
    def _not_negative(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(0):
            raise ValueError("must not be negative")
        return value
