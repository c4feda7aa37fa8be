"""The lifecycle metrics of the source documents, computed from the event store.

For a period ``[from, to)`` and a churn window ``W`` (a customer is *active* at time ``t``
when their last live order before ``t`` is less than ``W`` old; default: the lifecycle
model's ``lapsed`` threshold):

- customers at start ``S`` / at end ``E``: active at ``from`` / at ``to``;
  new ``N``: first order ever inside the period; lost: active at start, not at end;
- retention CRR = (E - N) / S; churn = lost / S;
- repeat purchase rate RPR = customers with 2+ orders in the period / with 1+;
- AOV = revenue / orders, APF = orders / buying customers (both in the period);
- CLV ≈ AOV * APF * lifespan, the lifespan in periods being 1 / churn;
- NPS = % promoters (9-10) - % detractors (0-6) over the period's survey answers.

Orders count once per ``order_id``; cancelled orders do not count; refunds in the period
subtract from revenue (their amount, or the whole order when they name none).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession


def _num(expr: str) -> str:
    """A JSON number, or a numeric string as storefronts send them, as SQL numeric."""
    return (
        f"CASE WHEN jsonb_typeof({expr}) = 'number' THEN ({expr})::numeric "
        f"WHEN jsonb_typeof({expr}) = 'string' AND ({expr} #>> '{{}}') ~ '^-?[0-9]+(\\.[0-9]+)?$' "
        f"THEN ({expr} #>> '{{}}')::numeric END"
    )


def _amount(alias: str) -> str:
    props = f"{alias}.payload->'properties'"
    return ", ".join(_num(f"{props}->'{name}'") for name in ("total", "revenue", "value"))


_ORDERS = f"""
WITH orders AS (
  SELECT DISTINCT ON (e.customer_key, e.payload->'properties'->>'order_id')
    e.customer_key, e.payload->'properties'->>'order_id' AS oid, e.timestamp AS at,
    coalesce({_amount("e")}, 0) AS amount
  FROM engine.events e
  WHERE e.event = 'Order Completed' AND e.timestamp < :end
    AND e.payload->'properties'->>'order_id' IS NOT NULL
  ORDER BY e.customer_key, e.payload->'properties'->>'order_id', e.timestamp
),
cancelled AS (
  SELECT DISTINCT c.customer_key, c.payload->'properties'->>'order_id' AS oid
  FROM engine.events c WHERE c.event = 'Order Cancelled' AND c.timestamp < :end
),
live AS (
  SELECT o.* FROM orders o LEFT JOIN cancelled x USING (customer_key, oid)
  WHERE x.oid IS NULL
),
per_customer AS (
  SELECT customer_key, min(at) AS first_at, max(at) AS last_at,
    max(at) FILTER (WHERE at < :start) AS last_before,
    count(*) FILTER (WHERE at >= :start) AS n_period,
    coalesce(sum(amount) FILTER (WHERE at >= :start), 0) AS revenue
  FROM live GROUP BY customer_key
)
SELECT
  count(*) FILTER (WHERE last_before >= :active_start),
  count(*) FILTER (WHERE last_at >= :active_end),
  count(*) FILTER (WHERE first_at >= :start),
  count(*) FILTER (WHERE last_before >= :active_start AND last_at < :active_end),
  count(*) FILTER (WHERE n_period > 0),
  count(*) FILTER (WHERE n_period > 1),
  coalesce(sum(n_period), 0),
  coalesce(sum(revenue), 0),
  (SELECT coalesce(sum(coalesce({_amount("r")}, o.amount, 0)), 0)
     FROM engine.events r LEFT JOIN orders o
       ON o.customer_key = r.customer_key AND o.oid = r.payload->'properties'->>'order_id'
     WHERE r.event = 'Order Refunded' AND r.timestamp >= :start AND r.timestamp < :end)
FROM per_customer
"""

_NPS = f"""
SELECT count(*), count(*) FILTER (WHERE s >= 9), count(*) FILTER (WHERE s <= 6)
FROM (SELECT {_num("payload->'properties'->'score'")} AS s FROM engine.events
      WHERE event = 'Survey Responded' AND timestamp >= :start AND timestamp < :end) x
WHERE s BETWEEN 0 AND 10
"""

_STAGES = "SELECT coalesce(stage, 'none'), count(*) FROM engine.customers GROUP BY 1 ORDER BY 1"

_TRANSITIONS = (
    "SELECT coalesce(from_stage, 'none'), to_stage, count(*) FROM engine.stage_transitions "
    "WHERE at >= :start AND at < :end GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2"
)


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 6) if denominator else None


async def lifecycle_metrics(
    session: AsyncSession, *, start: datetime, end: datetime, window: timedelta
) -> dict[str, Any]:
    params = {
        "start": start,
        "end": end,
        "active_start": start - window,
        "active_end": end - window,
    }
    row = (await session.execute(text(_ORDERS), params)).one()
    at_start, at_end, new, lost, buyers, repeat, orders, revenue, refunds = row
    orders = int(orders)
    revenue = float(revenue) - float(refunds)
    nps_count, promoters, detractors = (await session.execute(text(_NPS), params)).one()
    stages = {stage: int(n) for stage, n in (await session.execute(text(_STAGES)))}
    transitions = [
        {"from": f, "to": t, "count": int(n)}
        for f, t, n in (await session.execute(text(_TRANSITIONS), params))
    ]
    aov = _ratio(revenue, orders)
    apf = _ratio(orders, buyers)
    churn = _ratio(lost, at_start)
    lifespan = round(1 / churn, 6) if churn else None
    clv = round(aov * apf * lifespan, 2) if aov and apf and lifespan else None
    return {
        "from": start,
        "to": end,
        "churn_window_days": round(window.total_seconds() / 86400, 6),
        "customers": {"at_start": at_start, "at_end": at_end, "new": new, "lost": lost},
        "retention_rate": _ratio(at_end - new, at_start),
        "churn_rate": churn,
        "repeat_purchase_rate": _ratio(repeat, buyers),
        "orders": orders,
        "buyers": buyers,
        "revenue": round(revenue, 2),
        "aov": None if aov is None else round(aov, 2),
        "apf": apf,
        "lifespan_periods": lifespan,
        "clv": clv,
        "nps": {
            "responses": nps_count,
            "promoters": promoters,
            "passives": nps_count - promoters - detractors,
            "detractors": detractors,
            "score": None
            if not nps_count
            else round(100 * (promoters - detractors) / nps_count, 1),
        },
        "stages": stages,
        "transitions": transitions,
    }
