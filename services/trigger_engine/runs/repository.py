"""Run records: one append-only row per thing a run did, keyed by a derived id."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

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
from shared.ids import derive_id


@dataclass(frozen=True)
class RunRow:
    id: uuid.UUID
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
        id=derive_id("run-record", *parts),
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
                    id=derive_id("run-record", effect.run_id, "sent", effect.step),
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


_INSERT = text(
    "INSERT INTO engine.run_events "
    "(id, run_id, customer_key, rule_key, rule_version, kind, holdout, step, detail, at) "
    "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:runs AS text[]), CAST(:keys AS text[]), "
    "CAST(:rules AS text[]), CAST(:versions AS int[]), CAST(:kinds AS text[]), "
    "CAST(:holdouts AS bool[]), CAST(:steps AS int[]), CAST(:details AS text[]), "
    "CAST(:ats AS timestamptz[])) ON CONFLICT (id) DO NOTHING"
)


async def write_run_rows(session: AsyncSession, rows: Sequence[RunRow]) -> None:
    if not rows:
        return
    await session.execute(
        _INSERT,
        {
            "ids": [r.id for r in rows],
            "runs": [r.run_id for r in rows],
            "keys": [r.customer_key for r in rows],
            "rules": [r.rule_key for r in rows],
            "versions": [r.rule_version for r in rows],
            "kinds": [r.kind for r in rows],
            "holdouts": [r.holdout for r in rows],
            "steps": [r.step for r in rows],
            "details": [r.detail for r in rows],
            "ats": [r.at for r in rows],
        },
    )
