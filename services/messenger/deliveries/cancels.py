"""Run cancellations (``ActionCancelV1``): a run that ended early sends nothing more.

The engine sends one when a run that had emitted actions ends before completing (the customer
bought, left the audience, the rule was switched off, …), or meets its ``exit_when`` after
completing at a send (its last send may still be queued or retried). Three places check it,
so that neither the order records arrive in nor the timing of an attempt lets an action out:

- **on receipt** (:func:`cancel_runs`): the run is remembered in ``cancelled_runs``, and its
  deliveries waiting for an attempt (pending or retrying, not claimed) become ``cancelled``;
- **at intake** (:func:`ended_runs`, read by ``intake.insert_actions``): an action of a run
  already cancelled is stored ``cancelled`` (an action replayed after its cancellation, or
  one the cancellation overtook: after a merge the two are on different partitions);
- **at every attempt** (``claims``): a claimed delivery of a cancelled run is cancelled
  instead of sent, and an attempt that was in flight when the cancellation came is not
  retried (it cannot be called back: what it sent is sent).

A cancellation applies to a delivery unless the delivery was replayed after the cancellation
was received (``replayed_at``): replaying a cancelled delivery is an explicit override.
The caller owns the transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, literal, or_, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from services.messenger.deliveries.models import CancelledRun, Delivery
from services.messenger.deliveries.status import ACTIVE, RUN_ENDED, Status
from shared.envelope import ActionCancelV1


def run_ended_sql(table: str) -> str:
    """SQL for the end reason of the cancellation that applies to a row of ``table`` (a name
    or alias of ``messenger.deliveries``), or NULL: the check made at every attempt."""
    return (
        "(SELECT c.reason FROM messenger.cancelled_runs AS c "
        f"WHERE c.run_id = {table}.run_id "
        f"AND ({table}.replayed_at IS NULL OR c.received_at > {table}.replayed_at))"
    )


def run_ended_error_sql(
    reason: ColumnElement[Any] | InstrumentedAttribute[str],
) -> ColumnElement[Any]:
    """``status.run_ended_error`` in SQL (NULL when ``reason`` is)."""
    return literal(RUN_ENDED[0]) + reason + literal(RUN_ENDED[1])


def cancelled_row(cancel: ActionCancelV1, *, now: datetime) -> dict[str, Any]:
    """The ``cancelled_runs`` row of a cancellation received at ``now`` (pure)."""
    return {
        "run_id": cancel.run_id,
        "cancel_id": cancel.cancel_id,
        "customer_key": cancel.customer_key,
        "rule": cancel.rule,
        "reason": cancel.reason,
        "ended_at": cancel.ended_at,
        "received_at": now,
    }


async def cancel_runs(
    session: AsyncSession, cancels: Sequence[ActionCancelV1], *, now: datetime
) -> Counter[str]:
    """Remember the runs (``ON CONFLICT DO NOTHING``: received again, nothing changes) and
    cancel their deliveries waiting for an attempt. An attempt in flight is left to finish
    (``claims.record_attempt`` does not retry it). Returns deliveries cancelled per reason."""
    if not cancels:
        return Counter()
    rows = {c.run_id: cancelled_row(c, now=now) for c in cancels}
    await session.execute(insert(CancelledRun).values(list(rows.values())).on_conflict_do_nothing())
    run = CancelledRun
    result = await session.execute(
        update(Delivery)
        .where(
            run.run_id.in_(list(rows)),
            Delivery.run_id == run.run_id,
            Delivery.status.in_([s.value for s in ACTIVE]),
            or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
            or_(Delivery.replayed_at.is_(None), run.received_at > Delivery.replayed_at),
        )
        .values(
            status=Status.CANCELLED.value,
            last_error=run_ended_error_sql(run.reason),
            next_attempt_at=None,
            claim_token=None,
            claimed_until=None,
            updated_at=now,
        )
        .returning(run.reason)
    )
    return Counter(reason for (reason,) in result.all())


# A join on the unnested ids rather than ``run_id = ANY(:runs)``: a generic plan made while
# the table was small would otherwise stay a scan comparing every row with every id.
_ENDED = text(
    "SELECT c.run_id, c.reason FROM unnest(CAST(:runs AS text[])) AS w(run_id) "
    "JOIN messenger.cancelled_runs AS c ON c.run_id = w.run_id"
)


async def ended_runs(session: AsyncSession, run_ids: Iterable[str]) -> dict[str, str]:
    """The cancelled runs among ``run_ids``: run id -> why it ended."""
    wanted = sorted(set(run_ids))
    if not wanted:
        return {}
    result = await session.execute(_ENDED, {"runs": wanted})
    return {run_id: reason for run_id, reason in result.all()}
