"""What :func:`~.engine.step` consumes: a storefront event (:class:`shared.envelope.Event`), a
durable timer firing, or a new lifecycle model to follow (:class:`LifecycleChanged`, from the
re-evaluation pass).

``StageChanged`` is not an external input: :func:`~.engine.step` derives it after every
input and feeds it to the stage-triggered rules within the same call (one level deep: runs
never change the profile, so a stage change cannot cause another one).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

import msgspec

from shared.envelope import Event

TimerKind = Literal["step", "inactivity", "stage"]


class TimerFired(msgspec.Struct, frozen=True, kw_only=True):
    """A timer the engine asked for (``SetTimer``) became due and the I/O layer fired it."""

    type: ClassVar[str] = "timer"
    timer_id: str
    kind: TimerKind
    run_id: str | None = None
    due_at: datetime


class LifecycleChanged(msgspec.Struct, frozen=True, kw_only=True):
    """A new lifecycle model version was stored: re-evaluate the stage under it now.

    The step's ``lifecycle`` is that model. Unlike an event this is never deduplicated:
    applying it again is harmless because it only moves a customer whose stage (or stage
    timer) differs from what the model gives at ``now``.
    """

    type: ClassVar[str] = "lifecycle_changed"
    lifecycle_version: int


class StageChanged(msgspec.Struct, frozen=True, kw_only=True):
    """The customer's stage changed; stage-triggered rules start from this."""

    from_: str | None
    to: str
    reactivated: bool = False
    at: datetime


Input = Event | TimerFired | LifecycleChanged
