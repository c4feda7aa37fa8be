"""``GET /v1/metrics/lifecycle``: the documents' lifecycle metrics for a period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from services.trigger_engine.context import EngineDep
from services.trigger_engine.core.durations import DurationError, parse_duration
from services.trigger_engine.core.lifecycle import ElapsedCriterion, LifecycleModel
from services.trigger_engine.lifecycle import repository as lifecycle_repo
from services.trigger_engine.metrics.queries import lifecycle_metrics
from shared.errors import Unprocessable
from shared.http.auth import AdminDep

router = APIRouter(prefix="/v1/metrics", tags=["metrics"], dependencies=[AdminDep])

DEFAULT_PERIOD = timedelta(days=30)
DEFAULT_WINDOW = timedelta(days=180)


def churn_window(model: LifecycleModel) -> timedelta:
    """The model's ``lapsed`` threshold on ``last_order_at``, else 180 days."""
    for stage in model.stages:
        if stage.name != "lapsed":
            continue
        for criterion in stage.when:
            if (
                isinstance(criterion, ElapsedCriterion)
                and criterion.since == "last_order_at"
                and criterion.at_least is not None
            ):
                return criterion.at_least
    return DEFAULT_WINDOW


@router.get("/lifecycle", summary="Retention, repeat purchase, churn, AOV, APF, CLV, NPS, stages")
async def get_lifecycle_metrics(
    ctx: EngineDep,
    from_: Annotated[
        datetime | None, Query(alias="from", description="period start (default: 30 days ago)")
    ] = None,
    to: Annotated[datetime | None, Query(description="period end (default: now)")] = None,
    window: Annotated[
        str | None,
        Query(description="churn window, ISO 8601 (default: the lifecycle's lapsed threshold)"),
    ] = None,
) -> dict[str, Any]:
    end = to or datetime.now(UTC)
    start = from_ or end - DEFAULT_PERIOD
    if start >= end:
        raise Unprocessable("from: must be before 'to'")
    async with ctx.sessions() as session:
        if window is not None:
            try:
                churn = parse_duration(window)
            except DurationError as exc:
                raise Unprocessable(f"window: {exc}") from None
        else:
            churn = churn_window((await lifecycle_repo.current(session))[1])
        return await lifecycle_metrics(session, start=start, end=end, window=churn)
