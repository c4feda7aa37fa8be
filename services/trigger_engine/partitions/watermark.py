"""Watermarks: when a timer may fire without beating an event that is still in the log.

A timer is due at an instant of event time (a cart reminder at "added + 1 h"). The events
that decide what it does (the order that cancels the reminder) may still wait unconsumed in
``clm.events``: after a restart, or whenever the engine lags by more than a wait. So a timer
fires by the *watermark* of the partitions, never by the wall clock alone (as Flink fires
event-time timers). A partition's watermark ``W`` is an instant such that every record
appended to it before ``W`` has been folded. It moves forward two ways:

- **records**: having folded a record created at ``t`` (its Kafka timestamp, which the
  producing service sets when it sends), every record acknowledged to its producer before
  ``t - lateness`` sits before it in the log, so ``W >= t - lateness``. ``lateness`` covers
  the clock differences between the producing hosts;
- **caught up**: at instant ``T`` the partition's end offset is read; once the consumed
  position has reached it, every record appended before ``T`` is folded, so
  ``W >= T - lateness`` (here ``lateness`` covers the clocks of the producers against this
  engine's). This moves the watermark of a partition that receives nothing. The embedded
  broker reports an end offset that can lag by one producer batch, so the position must also
  have reached the high watermark of the last fetch response, which is exact.

A timer is *released* at its due time, unless it was already due when the event that set it
arrived (a phone that sent a day of queued events at once, a backfill): then it waits until
``grace`` after that arrival, so the rest of the late burst (the purchase that happened
before the due time) is folded first. :func:`release_at` is that rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta


def release_at(due_at: datetime, arrived_at: datetime | None, *, grace: timedelta) -> datetime:
    """When a timer due at ``due_at``, set by an input that arrived at ``arrived_at``
    (None: a timer or a lifecycle pass set it, never late), may fire once the watermark
    passes it."""
    if arrived_at is None or due_at > arrived_at:
        return due_at
    return arrived_at + grace


def from_records(
    records: Iterable[tuple[str, int, int]], *, lateness: timedelta
) -> dict[tuple[str, int], datetime]:
    """The watermark each ``(topic, partition)`` reaches by the ``(topic, partition,
    timestamp_ms)`` of the records folded; records without a timestamp count for nothing."""
    newest: dict[tuple[str, int], int] = {}
    for topic, partition, timestamp_ms in records:
        if timestamp_ms > 0:
            key = (topic, partition)
            if timestamp_ms > newest.get(key, 0):
                newest[key] = timestamp_ms
    return {key: datetime.fromtimestamp(ms / 1000, UTC) - lateness for key, ms in newest.items()}


def caught_up(position: int, end_offset: int, high_watermark: int | None) -> bool:
    """Whether a consumer at ``position`` has folded everything up to ``end_offset`` (read
    at the instant of the check) and the high watermark of its last fetch response."""
    return high_watermark is not None and position >= max(end_offset, high_watermark)
