"""The overview: customers per stage, the stage flow of the period, lifecycle metrics and
their trend over the periods before it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.security import SessionDep
from services.console.web import ApiDep, render

router = APIRouter(tags=["console"])

PERIODS: Final = {"7": 7, "30": 30, "90": 90}
TREND_PERIODS: Final = 6
#: (label, key in the metrics, how it reads)
METRICS: Final = (
    ("Retention rate", "retention_rate", "percent"),
    ("Repeat purchase rate", "repeat_purchase_rate", "percent"),
    ("Churn rate", "churn_rate", "percent"),
    ("Average order value", "aov", "number"),
    ("Customer lifetime value", "clv", "number"),
    ("Orders", "orders", "number"),
)


def _nps(metrics: dict[str, Any]) -> float | None:
    score = (metrics.get("nps") or {}).get("score")
    return None if score is None else float(score)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, _: SessionDep, api: ApiDep, days: str = "30") -> Response:
    length = timedelta(days=PERIODS.get(days, 30))
    end = datetime.now(UTC)
    windows = [(end - length * (i + 1), end - length * i) for i in range(TREND_PERIODS)]
    periods = await asyncio.gather(
        *(
            api.get(
                "engine", "/v1/metrics/lifecycle", **{"from": a.isoformat(), "to": b.isoformat()}
            )
            for a, b in windows
        )
    )
    rules = (await api.get("engine", "/v1/rules"))["items"]
    current = periods[0]
    oldest_first = list(reversed(periods))
    trends = {key: [(p["from"][:10], p.get(key)) for p in oldest_first] for _, key, _ in METRICS}
    trends["nps"] = [(p["from"][:10], _nps(p)) for p in oldest_first]
    stages = sorted(current["stages"].items(), key=lambda kv: -kv[1])
    return render(
        request,
        "overview.html",
        days=str(length.days),
        periods=PERIODS,
        metrics=current,
        metric_rows=METRICS,
        trends=trends,
        stages=stages,
        customers=sum(n for _, n in stages),
        flow=[(f"{t['from']} → {t['to']}", t["count"]) for t in current["transitions"][:12]],
        rules=len(rules),
    )
