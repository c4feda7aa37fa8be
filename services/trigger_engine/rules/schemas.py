"""Request and response shapes of the rules API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from services.trigger_engine.core.rule_checks import RuleError
from services.trigger_engine.core.rules import Rule
from services.trigger_engine.rules.repository import StoredRule
from shared.errors import Unprocessable
from shared.http.schema import DocumentedAs


class RuleOut(Rule):
    """A rule as stored: its current version plus when it was created and last changed."""

    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, stored: StoredRule) -> RuleOut:
        return cls.model_validate(
            {
                **stored.rule.model_dump(mode="json"),
                "created_at": stored.created_at,
                "updated_at": stored.updated_at,
            }
        )


class RuleVersionOut(BaseModel):
    version: int
    created_at: datetime
    rule: Rule


class RulePatch(BaseModel):
    """``PATCH /v1/rules/{key}``: switch a rule on or off and nothing else."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class Validation(BaseModel):
    valid: bool = Field(description="always true: an invalid rule is a 422")
    rule: Rule = Field(description="the rule as it would be stored (defaults filled in)")


class SendsOnDay(BaseModel):
    day: date = Field(description="UTC day")
    sent: int


class SimulationRequest(BaseModel):
    """Replay stored history through the rule with a virtual clock."""

    from_: datetime | None = Field(
        default=None, alias="from", description="start of the history (default: 7 days ago)"
    )
    to: datetime | None = Field(default=None, description="end of the history (default: now)")
    rule: Annotated[dict[str, Any], DocumentedAs(Rule)] | None = Field(
        default=None, description="a draft of the rule to try instead of the stored version"
    )
    sample: int = Field(default=20, ge=0, le=500, description="actions to return as examples")


class SimulationOut(BaseModel):
    rule: str
    version: int
    from_: datetime = Field(serialization_alias="from")
    to: datetime
    events: int = Field(description="stored events replayed")
    customers: int
    entered: int
    sent: int
    held_out: int
    skipped: int = Field(default=0, description="sends the send policy would have refused")
    deferred: int = Field(default=0, description="sends quiet hours would have postponed")
    exited: int
    completed: int
    converted: int
    truncated: bool = Field(description="history was longer than the most one simulation reads")
    reached: int = Field(default=0, description="customers it would have sent to at least once")
    sends_per_day: list[SendsOnDay] = Field(
        default_factory=list, description="would-be sends per UTC day, days without sends left out"
    )
    actions: list[dict[str, Any]] = Field(
        description="the first actions it would have sent: the webhook data and `at`, the time"
    )


class ConversionOut(BaseModel):
    treated: int
    held_out: int


class RatesOut(BaseModel):
    treated: float | None
    held_out: float | None


class RuleStatsOut(BaseModel):
    rule: str
    triggered: int = Field(description="runs started (treated and held out)")
    entered: int = Field(description="same as triggered")
    held_out: int = Field(description="runs in the holdout group (they send nothing)")
    sent: int = Field(description="actions sent")
    held_back: int = Field(description="sends skipped because the run was held out")
    skipped: int = Field(
        default=0, description="sends the send policy refused (no consent, frequency cap)"
    )
    skipped_by_reason: dict[str, int] = Field(
        default_factory=dict, description="opted_out, no_opt_in, frequency_capped -> count"
    )
    deferred: int = Field(default=0, description="sends postponed by quiet hours")
    exited: int
    completed: int
    converted: ConversionOut
    conversion_rate: RatesOut
    lift: float | None = Field(
        description="conversion rate of treated minus held-out runs (null without a holdout)"
    )


def unprocessable(error: RuleError, *, prefix: str = "") -> Unprocessable:
    details = [
        {"loc": ".".join(str(p) for p in issue.loc) or "rule", "message": issue.message}
        for issue in error.issues
    ]
    return Unprocessable(prefix + str(error), details=details)
