"""Retry policy as data, plus the pure maths that turns one attempt's result into a decision.

Nothing here sleeps, reads the clock or draws random numbers: the caller passes ``now`` and a
``rand`` in ``[0, 1)``, so a decision is a function of its inputs and a test can pin it down.
Terminal outcomes (``Failed``, ``DisableDestination``, ``Dead``) are returned as values — the
delivery worker records them in the append-only attempt log like any other result.

Schedule semantics (Svix's): ``schedule[i]`` is the wait before attempt ``i + 1``. The first
entry is the wait before the first attempt (normally zero: deliver immediately); after attempt
``n`` fails with a retryable outcome the next attempt waits ``schedule[n]``. A delivery therefore
gets at most ``len(schedule)`` attempts; a retryable failure of the last one is ``Dead``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)

#: ``Retry-After`` values longer than this are treated as this long before clamping, so a
#: hostile header cannot overflow ``timedelta``.
_RETRY_AFTER_PARSE_CAP = timedelta(days=365)


class RetryPolicy(BaseModel):
    """How often and how patiently a delivery is retried. Plain data, safe to load from config.

    Durations accept seconds (``5``) or ISO 8601 (``"PT5M"``), as pydantic parses ``timedelta``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: tuple[timedelta, ...] = Field(
        default=DEFAULT_SCHEDULE,
        min_length=1,
        description="wait before each attempt; non-negative and non-decreasing",
    )
    jitter: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        description="each retry waits schedule * (1 ± jitter), uniformly, so bursts spread out",
    )
    retry_after_min: timedelta = Field(
        default=timedelta(seconds=1), description="a receiver's Retry-After is raised to this"
    )
    retry_after_max: timedelta = Field(
        default=timedelta(hours=1), description="a receiver's Retry-After is capped at this"
    )
    timeout: timedelta = Field(
        default=timedelta(seconds=15), description="whole-request timeout of one attempt"
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        if any(step < timedelta(0) for step in self.schedule):
            raise ValueError("schedule entries must not be negative")
        if any(b < a for a, b in zip(self.schedule, self.schedule[1:], strict=False)):
            raise ValueError("schedule must be non-decreasing (backoff never speeds up)")
        if self.retry_after_min < timedelta(0):
            raise ValueError("retry_after_min must not be negative")
        if self.retry_after_max < self.retry_after_min:
            raise ValueError("retry_after_max must be >= retry_after_min")
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        return self

    @property
    def max_attempts(self) -> int:
        """Attempts a delivery gets before it is dead: one per schedule entry."""
        return len(self.schedule)

    @property
    def first_attempt_delay(self) -> timedelta:
        """Wait before the first attempt (``schedule[0]``, normally zero)."""
        return self.schedule[0]


# --- what happened --------------------------------------------------------------------------


class TransportErrorKind(StrEnum):
    """Why an attempt got no HTTP response at all."""

    TIMEOUT = "timeout"
    CONNECTION = "connection"
    #: The destination resolved to an address the SSRF guard refuses: retrying cannot help.
    UNSAFE_DESTINATION = "unsafe_destination"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The receiver answered. ``retry_after`` is the raw ``Retry-After`` header, if any."""

    status_code: int
    retry_after: str | None = None


@dataclass(frozen=True, slots=True)
class TransportError:
    """The attempt failed below HTTP (timeout, refused connection, TLS, DNS, …)."""

    kind: TransportErrorKind
    detail: str = ""


AttemptResult = HttpResponse | TransportError


class Outcome(StrEnum):
    """The class of an attempt result, before the schedule is consulted."""

    DELIVERED = "delivered"
    RETRYABLE = "retryable"
    FAILED = "failed"
    GONE = "gone"


def classify(result: AttemptResult) -> tuple[Outcome, str]:
    """Sort a result into an :class:`Outcome` with a human-readable reason.

    2xx delivered; 429 and 5xx retryable; 410 gone (disable the destination); any other status
    (other 4xx, redirects — which are never followed —, 1xx, nonsense) fails at once. Timeouts,
    connection errors and unknown transport errors are retryable; an unsafe resolved address
    is not.
    """
    if isinstance(result, TransportError):
        detail = f": {result.detail}" if result.detail else ""
        if result.kind is TransportErrorKind.UNSAFE_DESTINATION:
            return Outcome.FAILED, f"unsafe destination{detail}"
        return Outcome.RETRYABLE, f"{result.kind.value}{detail}"
    code = result.status_code
    if 200 <= code <= 299:
        return Outcome.DELIVERED, f"HTTP {code}"
    if code == 410:
        return Outcome.GONE, "HTTP 410: the receiver says this endpoint is gone"
    if code == 429:
        return Outcome.RETRYABLE, "HTTP 429: rate limited by the receiver"
    if 500 <= code <= 599:
        return Outcome.RETRYABLE, f"HTTP {code}: receiver error"
    if 400 <= code <= 499:
        return Outcome.FAILED, f"HTTP {code}: the receiver rejected the message"
    if 300 <= code <= 399:
        return Outcome.FAILED, f"HTTP {code}: redirects are not followed; fix the destination URL"
    return Outcome.FAILED, f"HTTP {code}: unexpected status"


# --- what to do about it --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivered:
    """The receiver accepted the message (2xx)."""

    reason: str = "delivered"


@dataclass(frozen=True, slots=True)
class Retry:
    """Try again at ``next_attempt_at`` (``= now + after``)."""

    after: timedelta
    next_attempt_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Terminal: the receiver rejected the message (4xx other than 410/429). Replayable."""

    reason: str


@dataclass(frozen=True, slots=True)
class DisableDestination:
    """Terminal for the delivery, and the destination should be disabled (410 Gone)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Dead:
    """Terminal: retryable failures used up every attempt of the schedule. Replayable."""

    reason: str


Decision = Delivered | Retry | Failed | DisableDestination | Dead


def parse_retry_after(value: str | None, *, now: datetime) -> timedelta | None:
    """Parse a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).

    Returns ``None`` for a missing or unparseable header (it is then ignored), zero for a date
    in the past, and at most a year (the policy clamps it further). ``now`` must be aware.
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:
        return None
    if text.isascii() and text.isdigit():
        cap = int(_RETRY_AFTER_PARSE_CAP.total_seconds())
        return timedelta(seconds=min(int(text), cap))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown origin; treat as UTC
        when = when.replace(tzinfo=now.tzinfo)
    return min(max(when - now, timedelta(0)), _RETRY_AFTER_PARSE_CAP)


def clamp_retry_after(policy: RetryPolicy, retry_after: timedelta) -> timedelta:
    """Bound a receiver's ``Retry-After`` to ``[retry_after_min, retry_after_max]``."""
    return min(max(retry_after, policy.retry_after_min), policy.retry_after_max)


def next_delay(
    policy: RetryPolicy,
    attempt_number: int,
    outcome: Outcome,
    retry_after: timedelta | None,
    *,
    rand: float,
) -> timedelta | None:
    """Wait before the attempt after ``attempt_number`` (1-based), or ``None`` if there is none.

    ``None`` when the outcome is not retryable or the schedule is used up. Otherwise the
    scheduled wait with symmetric jitter, ``schedule[n] * (1 + jitter * (2 * rand - 1))`` — its
    expectation is the scheduled wait, so expected delays follow the (non-decreasing) schedule.
    A ``Retry-After`` is honoured as a floor, clamped to the policy's bounds: the receiver can
    postpone a retry, but cannot make us burn the schedule faster than it says, nor park a
    delivery longer than ``retry_after_max``.
    """
    _check_attempt(attempt_number)
    _check_rand(rand)
    if outcome is not Outcome.RETRYABLE or attempt_number >= policy.max_attempts:
        return None
    delay = policy.schedule[attempt_number] * (1.0 + policy.jitter * (2.0 * rand - 1.0))
    if retry_after is not None:
        delay = max(delay, clamp_retry_after(policy, retry_after))
    return delay


def decide(
    policy: RetryPolicy,
    attempt_number: int,
    result: AttemptResult,
    *,
    now: datetime,
    rand: float,
) -> Decision:
    """What to do after attempt ``attempt_number`` (1-based) ended with ``result`` at ``now``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    outcome, reason = classify(result)
    if outcome is Outcome.DELIVERED:
        return Delivered(reason)
    if outcome is Outcome.GONE:
        return DisableDestination(reason)
    if outcome is Outcome.FAILED:
        return Failed(reason)
    header = result.retry_after if isinstance(result, HttpResponse) else None
    delay = next_delay(
        policy, attempt_number, outcome, parse_retry_after(header, now=now), rand=rand
    )
    if delay is None:
        return Dead(f"out of retries after {attempt_number} attempts; last: {reason}")
    return Retry(after=delay, next_attempt_at=now + delay, reason=reason)


def seeded_rand(*parts: object) -> float:
    """A stable number in ``[0, 1)`` from ``parts`` (say, the action id and attempt number).

    Lets the worker jitter without a global random generator, and makes one delivery's
    schedule reproducible while different deliveries still spread out.
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / 2.0**53


def _check_attempt(attempt_number: int) -> None:
    if attempt_number < 1:
        raise ValueError(f"attempt_number is 1-based, got {attempt_number}")


def _check_rand(rand: float) -> None:
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand}")
