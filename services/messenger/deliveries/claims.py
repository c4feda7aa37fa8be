"""Claiming due deliveries and recording what became of them (short transactions only).

A claim sets ``claim_token`` and ``claimed_until`` (the lease) on rows picked with
``FOR UPDATE SKIP LOCKED``, so concurrent workers never pick the same row; a row whose worker
died becomes claimable again when its lease runs out. Every write after the send is guarded by
the claim token: a worker that lost its claim (replayed, erased) cannot overwrite the row.

Run cancellations (``cancels.py``) are checked at every attempt: a claim says whether the
delivery's run has been cancelled (``run_ended``; the dispatcher then cancels it unsent), and
an attempt that ends in a retry is not retried if its run was cancelled meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, Uuid, case, func, insert, literal, literal_column, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.deliveries.cancels import run_ended_error_sql, run_ended_sql
from services.messenger.deliveries.models import Delivery, DeliveryAttempt
from services.messenger.deliveries.status import ACTIVE, NextState, Status


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: uuid.UUID
    action_id: str
    customer_key: str
    channel: str
    destination_id: str | None
    destination_named: bool
    template: str | None
    payload: dict[str, Any] | None
    action_created_at: datetime
    attempt_count: int
    round: int
    round_attempts: int
    claim_token: uuid.UUID
    #: why the delivery's run ended, when a cancellation applies to it: not to be sent
    run_ended: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    """What :func:`record_attempt` stored: the status, and the run's end reason when a retry
    was cancelled instead (its run was cancelled while the attempt was in flight)."""

    status: Status
    run_ended: str | None = None


_ACTIVE_SQL = ", ".join(f"'{s.value}'" for s in ACTIVE)

_CLAIM = text(
    f"""
WITH caps AS (
    SELECT * FROM unnest(CAST(:cap_ids AS text[]), CAST(:cap_values AS int[]))
        AS c(destination_id, cap)
), due AS (
    SELECT d.id, d.destination_id, d.next_attempt_at
    FROM messenger.deliveries d
    WHERE d.status IN ({_ACTIVE_SQL})
      AND d.next_attempt_at <= :now
      AND (d.claimed_until IS NULL OR d.claimed_until < :now)
      AND (d.destination_id IS NULL OR NOT d.destination_id = ANY(CAST(:full AS text[])))
    ORDER BY d.next_attempt_at
    LIMIT :scan
), ranked AS (
    SELECT due.id, due.next_attempt_at,
           row_number() OVER (
               PARTITION BY due.destination_id ORDER BY due.next_attempt_at, due.id
           ) AS rn,
           coalesce(caps.cap, :default_cap) AS cap
    FROM due LEFT JOIN caps ON caps.destination_id = due.destination_id
), picked AS (
    SELECT id FROM ranked WHERE rn <= cap ORDER BY next_attempt_at LIMIT :limit
), locked AS (
    SELECT d.id FROM messenger.deliveries d
    WHERE d.id IN (SELECT id FROM picked)
      AND d.status IN ({_ACTIVE_SQL})
      AND (d.claimed_until IS NULL OR d.claimed_until < :now)
    FOR UPDATE SKIP LOCKED
)
UPDATE messenger.deliveries d
SET claim_token = :token, claimed_until = :lease_until
FROM locked WHERE d.id = locked.id
RETURNING d.id, d.action_id, d.customer_key, d.channel, d.destination_id,
          d.destination_named, d.template, d.payload, d.action_created_at,
          d.attempt_count, d.round, d.round_attempts, d.claim_token,
          {run_ended_sql("d")} AS run_ended
"""
).columns(id=Uuid(), payload=JSONB(), claim_token=Uuid())


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    lease_until: datetime,
    token: uuid.UUID,
    caps: Mapping[str, int],
    default_cap: int,
    limit: int,
    scan: int = 5_000,
) -> list[ClaimedDelivery]:
    """Claim up to ``limit`` due deliveries, at most ``caps[destination]`` per destination
    (``default_cap`` for the others; none at all for a destination whose cap is 0), oldest
    due first."""
    full = [dest for dest, cap in caps.items() if cap <= 0]
    open_caps = {dest: cap for dest, cap in caps.items() if cap > 0}
    result = await session.execute(
        _CLAIM,
        {
            "cap_ids": list(open_caps),
            "cap_values": list(open_caps.values()),
            "full": full,
            "now": now,
            "scan": scan,
            "default_cap": default_cap,
            "limit": limit,
            "token": token,
            "lease_until": lease_until,
        },
    )
    return [ClaimedDelivery(**row) for row in result.mappings()]


async def next_due_at(session: AsyncSession, *, now: datetime) -> datetime | None:
    """When the earliest unclaimed active delivery is due (may be in the past)."""
    value: datetime | None = await session.scalar(
        text(
            f"SELECT min(next_attempt_at) FROM messenger.deliveries "
            f"WHERE status IN ({_ACTIVE_SQL}) "
            f"AND (claimed_until IS NULL OR claimed_until < :now)"
        ),
        {"now": now},
    )
    return value


def _guard(claimed: ClaimedDelivery) -> Any:
    return (Delivery.id == claimed.id) & (Delivery.claim_token == claimed.claim_token)


async def record_attempt(
    session: AsyncSession,
    claimed: ClaimedDelivery,
    state: NextState,
    *,
    destination_id: str,
    started_at: datetime,
    latency_ms: float,
    status_code: int | None,
    error: str | None,
    response_body: str | None,
    now: datetime,
) -> Recorded | None:
    """Append the attempt to the log and move the delivery on. Returns None if the claim was
    lost meanwhile (the row is left alone, and the response body is not kept).

    A retry whose run has been cancelled meanwhile is ``cancelled`` instead: the attempt in
    flight could not be called back, but the next one does not happen."""
    values: dict[str, Any] = {
        "status": state.status.value,
        "next_attempt_at": state.next_attempt_at,
        "last_error": state.error,
    }
    # The run's end reason, if a cancellation applies (only a retry asks: nothing else
    # schedules another attempt).
    ended: Any = literal(None, type_=Text)
    if state.status is Status.RETRYING:
        ended = literal_column(run_ended_sql("messenger.deliveries"), type_=Text)
        values = {
            "status": case((ended.is_not(None), Status.CANCELLED.value), else_=values["status"]),
            "next_attempt_at": case((ended.is_not(None), None), else_=values["next_attempt_at"]),
            "last_error": func.coalesce(run_ended_error_sql(ended), values["last_error"]),
        }
    result = await session.execute(
        update(Delivery)
        .where(_guard(claimed))
        .values(
            **values,
            attempt_count=Delivery.attempt_count + 1,
            round_attempts=Delivery.round_attempts + 1,
            claim_token=None,
            claimed_until=None,
            destination_id=destination_id,
            last_status_code=status_code,
            delivered_at=state.delivered_at or Delivery.delivered_at,
            updated_at=now,
        )
        .returning(Delivery.status, ended)
    )
    row = result.first()
    kept = row is not None
    await session.execute(
        insert(DeliveryAttempt).values(
            delivery_id=claimed.id,
            number=claimed.attempt_count + 1,
            round=claimed.round,
            destination_id=destination_id,
            started_at=started_at,
            latency_ms=latency_ms,
            status_code=status_code,
            outcome=state.outcome.value,
            error=error,
            response_body=response_body if kept else None,
        )
    )
    if row is None:
        return None
    recorded, reason = Status(row[0]), row[1]
    return Recorded(recorded, reason if recorded is not state.status else None)


async def finish_unsent(
    session: AsyncSession,
    claimed: ClaimedDelivery,
    *,
    status: Status,
    reason: str,
    destination_id: str | None,
    now: datetime,
) -> bool:
    """End a claimed delivery that is not sent (suppressed, no destination, template error)."""
    result = await session.execute(
        update(Delivery)
        .where(_guard(claimed))
        .values(
            status=status.value,
            next_attempt_at=None,
            claim_token=None,
            claimed_until=None,
            destination_id=destination_id,
            last_error=reason[:1000],
            updated_at=now,
        )
        .returning(Delivery.id)
    )
    return result.first() is not None


async def release(session: AsyncSession, claims: Sequence[ClaimedDelivery]) -> None:
    """Give claims back unsent (shutdown): they are due again at once for any worker."""
    for claimed in claims:
        await session.execute(
            update(Delivery).where(_guard(claimed)).values(claim_token=None, claimed_until=None)
        )
