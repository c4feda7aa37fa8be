"""What :func:`~.engine.step` consumes: a storefront event, a durable timer firing, or a new
lifecycle model to follow (:class:`LifecycleChanged`, from the re-evaluation pass).

``StageChanged`` is not an external input: :func:`~.engine.step` derives it after every
input and feeds it to the stage-triggered rules within the same call (one level deep: runs
never change the profile, so a stage change cannot cause another one).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.envelope import EventV1

TimerKind = Literal["step", "inactivity", "stage"]


class TimerFired(BaseModel):
    """A timer the engine asked for (``SetTimer``) became due and the I/O layer fired it."""

    model_config = ConfigDict(frozen=True)

    type: Literal["timer"] = "timer"
    timer_id: str
    kind: TimerKind
    run_id: str | None = None
    due_at: datetime


class LifecycleChanged(BaseModel):
    """A new lifecycle model version was stored: re-evaluate the stage under it now.

    The step's ``lifecycle`` is that model. Unlike an event this is never deduplicated:
    applying it again is harmless because it only moves a customer whose stage (or stage
    timer) differs from what the model gives at ``now``.
    """

    model_config = ConfigDict(frozen=True)

    type: Literal["lifecycle_changed"] = "lifecycle_changed"
    lifecycle_version: int = Field(ge=0)


class StageChanged(BaseModel):
    """The customer's stage changed; stage-triggered rules start from this."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, serialize_by_alias=True)

    type: Literal["stage_changed"] = "stage_changed"
    from_: str | None = Field(alias="from")
    to: str
    reactivated: bool = False
    at: datetime


Input = Annotated[EventV1 | TimerFired | LifecycleChanged, Field(discriminator="type")]
