"""Run records: one append-only row per thing a run did, keyed by a derived id."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from services.trigger_engine.core.effects import (
    Converted,
    Effect,
    EmitAction,
    HeldOut,
    RunCompleted,
    RunExited,
    RunStarted,
    SendDeferred,
    SendSkipped,
)
from shared.ids import derive_text


class RunRow(NamedTuple):
    """A row of ``engine.run_events``, in the order of the ``engine.run_row`` composite the
    checkpoint takes (so the tuple is passed as it is); the id is the uuid's text."""

    id: str
    run_id: str
    customer_key: str
    rule_key: str
    rule_version: int
    kind: str
    holdout: bool
    step: int | None
    detail: str | None
    at: datetime


def _row(
    effect: RunStarted
    | RunExited
    | RunCompleted
    | HeldOut
    | SendDeferred
    | SendSkipped
    | Converted,
    kind: str,
    *,
    step: int | None = None,
    detail: str | None = None,
    distinct: str | None = None,
) -> RunRow:
    parts: list[object] = [effect.run_id, kind, "" if step is None else step]
    if distinct is not None:
        parts.append(distinct)
    return RunRow(
        id=derive_text("run-record", *parts),
        run_id=effect.run_id,
        customer_key=effect.customer_key,
        rule_key=effect.rule,
        rule_version=effect.rule_version,
        kind=kind,
        holdout=effect.holdout,
        step=step,
        detail=detail,
        at=effect.at,
    )


def run_rows(effects: Iterable[Effect]) -> list[RunRow]:
    """The run records among ``effects`` (sends included, as ``sent``; sends the send policy
    refused as ``skipped`` with the reason, or postponed as ``deferred`` with the time)."""
    rows: list[RunRow] = []
    for effect in effects:
        if isinstance(effect, RunStarted):
            rows.append(_row(effect, "started", detail=effect.trigger.message_id))
        elif isinstance(effect, RunExited):
            rows.append(_row(effect, "exited", step=effect.step, detail=effect.reason))
        elif isinstance(effect, RunCompleted):
            rows.append(_row(effect, "completed"))
        elif isinstance(effect, HeldOut):
            rows.append(_row(effect, "held_out", step=effect.step, detail=effect.action_id))
        elif isinstance(effect, SendSkipped):
            rows.append(_row(effect, "skipped", step=effect.step, detail=effect.reason))
        elif isinstance(effect, SendDeferred):
            # A step can be deferred again when it resumes (quiet hours or the customer's zone
            # changed meanwhile): one record per deferral, told apart by when it ends.
            until = effect.until.isoformat()
            rows.append(_row(effect, "deferred", step=effect.step, detail=until, distinct=until))
        elif isinstance(effect, Converted):
            rows.append(_row(effect, "converted", detail=effect.message_id))
        elif isinstance(effect, EmitAction):
            rows.append(
                RunRow(
                    id=derive_text("run-record", effect.run_id, "sent", effect.step),
                    run_id=effect.run_id,
                    customer_key=effect.customer_key,
                    rule_key=effect.rule,
                    rule_version=effect.rule_version,
                    kind="sent",
                    holdout=False,
                    step=effect.step,
                    detail=effect.action_id,
                    at=effect.created_at,
                )
            )
    return rows
