"""``GET /v1/customers``: list customers, by stage, or search them by id, email or phone prefix.

Reads only the plain columns of ``engine.customers`` (never the ``state`` document). An id
matches the customer key, the user id or a merged anonymous id; a query that looks like an
email address (it has an ``@``) or a phone number also matches the start of the customer's
current ``email`` (any case) or ``phone`` trait (indexed columns the owners keep). Like every
read of a customer, it lags the stream by at most a checkpoint interval.
"""

from __future__ import annotations

import re
from typing import Any, Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.customers.schemas import CustomerSummary

_PHONE: Final = re.compile(r"^\+?[0-9][0-9 ()./-]*$")

_COLUMNS: Final = (
    "c.customer_key, c.user_id, c.stage, c.stage_entered_at, c.orders, c.revenue, "
    "c.first_seen_at, c.last_seen_at, c.last_order_at"
)
_BY_ID: Final = (
    "c.customer_key LIKE :prefix ESCAPE '\\' OR c.user_id LIKE :prefix ESCAPE '\\' "
    "OR c.customer_key IN (SELECT l.customer_key FROM engine.identity_links AS l "
    "WHERE l.anonymous_id LIKE :prefix ESCAPE '\\')"
)
_BY_TRAIT: Final = "c.email LIKE :lower ESCAPE '\\' OR c.phone LIKE :prefix ESCAPE '\\'"


def _like_prefix(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def looks_like_contact(query: str) -> bool:
    """Whether ``query`` may be (the start of) an email address or a phone number."""
    return "@" in query or bool(_PHONE.match(query))


async def search(
    session: AsyncSession,
    *,
    query: str | None,
    stage: str | None,
    after: str | None,
    limit: int,
) -> list[CustomerSummary]:
    """Customers by key order after ``after``; at most ``limit``."""
    where: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if query:
        params["prefix"] = _like_prefix(query)
        params["lower"] = _like_prefix(query.lower())
        where.append(f"({_BY_ID} OR {_BY_TRAIT})" if looks_like_contact(query) else f"({_BY_ID})")
    if stage is not None:
        where.append("c.stage = :stage")
        params["stage"] = stage
    if after is not None:
        where.append("c.customer_key > :after")
        params["after"] = after
    sql = f"SELECT {_COLUMNS} FROM engine.customers AS c"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY c.customer_key LIMIT :limit"
    rows = await session.execute(text(sql), params)
    return [
        CustomerSummary(
            id=user_id or key,
            customer_key=key,
            user_id=user_id,
            stage=stage_name,
            stage_entered_at=entered,
            orders=orders,
            revenue=revenue,
            first_seen_at=first_seen,
            last_seen_at=last_seen,
            last_order_at=last_order,
        )
        for (
            key,
            user_id,
            stage_name,
            entered,
            orders,
            revenue,
            first_seen,
            last_seen,
            last_order,
        ) in rows
    ]
