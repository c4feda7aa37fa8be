"""Delivery statuses and the pure step from a retry decision to the row's next state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from services.messenger.delivery.retry import (
    Dead,
    Decision,
    Delivered,
    DisableDestination,
    Failed,
    Retry,
)


class Status(StrEnum):
    PENDING = "pending"
    """Waiting for its first attempt (or for a replayed one)."""
    RETRYING = "retrying"
    """An attempt failed in a retryable way; the next one is scheduled."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Terminal: rejected by the receiver (4xx, 410), or not sendable (no destination, unsafe
    URL, template error). Replayable."""
    DEAD = "dead"
    """Terminal: out of retries. Replayable."""
    SUPPRESSED = "suppressed"
    """Not sent: the customer or address is suppressed on the channel. Replayable."""
    CANCELLED = "cancelled"
    """Not sent: its run ended first (``ActionCancelV1``: the customer bought, left the
    audience, …), or the customer was erased. Replayable unless erased: a replay is an
    explicit override and sends it all the same."""


#: Statuses the dispatcher claims.
ACTIVE = (Status.PENDING, Status.RETRYING)
#: Statuses a replay accepts (``retrying`` means: retry now).
REPLAYABLE = (
    Status.RETRYING,
    Status.DELIVERED,
    Status.FAILED,
    Status.DEAD,
    Status.SUPPRESSED,
    Status.CANCELLED,
)


#: ``last_error`` of a delivery cancelled because its run ended: ``RUN_ENDED[0] + reason +
#: RUN_ENDED[1]`` (also built in SQL, from the same parts: ``deliveries/cancels.py``).
RUN_ENDED = ("run ended (", ") before sending")


def run_ended_error(reason: str) -> str:
    """The ``last_error`` of a delivery cancelled because its run ended for ``reason``."""
    return f"{RUN_ENDED[0]}{reason}{RUN_ENDED[1]}"


class AttemptOutcome(StrEnum):
    """What one attempt led to (the ``outcome`` column of the attempt log)."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"
    GONE = "gone"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class NextState:
    status: Status
    outcome: AttemptOutcome
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    error: str | None
    disable_destination: bool = False


def next_state(decision: Decision, *, now: datetime) -> NextState:
    """The delivery's state after an attempt that ended in ``decision``."""
    match decision:
        case Delivered():
            return NextState(Status.DELIVERED, AttemptOutcome.DELIVERED, None, now, None)
        case Retry(next_attempt_at=at, reason=reason):
            return NextState(Status.RETRYING, AttemptOutcome.RETRY, at, None, reason)
        case DisableDestination(reason=reason):
            return NextState(Status.FAILED, AttemptOutcome.GONE, None, None, reason, True)
        case Failed(reason=reason):
            return NextState(Status.FAILED, AttemptOutcome.FAILED, None, None, reason)
        case Dead(reason=reason):
            return NextState(Status.DEAD, AttemptOutcome.DEAD, None, None, reason)
    raise AssertionError(f"unknown decision {decision!r}")  # pragma: no cover
