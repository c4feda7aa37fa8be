"""Rule stats from the run records: entered, sent, skipped, exited, held out, converted, lift."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.rules.schemas import ConversionOut, RatesOut, RuleStatsOut

_COUNTS = text(
    "SELECT kind, holdout, count(*), count(DISTINCT run_id) FROM engine.run_events "
    "WHERE rule_key = :key GROUP BY kind, holdout"
)
_SKIPPED = text(
    "SELECT detail, count(*) FROM engine.run_events "
    "WHERE rule_key = :key AND kind = 'skipped' GROUP BY detail"
)


def _rate(converted: int, entered: int) -> float | None:
    return round(converted / entered, 6) if entered else None


async def rule_stats(session: AsyncSession, key: str) -> RuleStatsOut:
    rows = await session.execute(_COUNTS, {"key": key})
    runs: dict[tuple[str, bool], int] = {}
    records: dict[tuple[str, bool], int] = {}
    for kind, holdout, count, distinct_runs in rows:
        records[(kind, holdout)] = int(count)
        runs[(kind, holdout)] = int(distinct_runs)

    def both(kind: str, table: dict[tuple[str, bool], int]) -> int:
        return table.get((kind, False), 0) + table.get((kind, True), 0)

    entered_treated = runs.get(("started", False), 0)
    entered_held = runs.get(("started", True), 0)
    converted_treated = runs.get(("converted", False), 0)
    converted_held = runs.get(("converted", True), 0)
    treated_rate = _rate(converted_treated, entered_treated)
    held_rate = _rate(converted_held, entered_held)
    lift = (
        round(treated_rate - held_rate, 6)
        if treated_rate is not None and held_rate is not None
        else None
    )
    return RuleStatsOut(
        rule=key,
        triggered=entered_treated + entered_held,
        entered=entered_treated + entered_held,
        held_out=entered_held,
        sent=both("sent", records),
        held_back=both("held_out", records),
        skipped=both("skipped", records),
        skipped_by_reason={
            str(reason): int(count)
            for reason, count in await session.execute(_SKIPPED, {"key": key})
        },
        deferred=both("deferred", records),
        exited=both("exited", runs),
        completed=both("completed", runs),
        converted=ConversionOut(treated=converted_treated, held_out=converted_held),
        conversion_rate=RatesOut(treated=treated_rate, held_out=held_rate),
        lift=lift,
    )
