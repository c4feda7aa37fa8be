"""The consumer loop every service uses.

Batched ``getmany``; offsets are committed only after the handler returned (after its
database commit). Transient failures (database or broker unreachable) retry the same batch
with backoff and commit nothing. Any other failure is isolated record by record: the record
that still fails goes to ``clm.dead-letters`` with its reason and its offset is committed, so
one poison record never stalls a partition.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError, KafkaError, KafkaTimeoutError
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from shared.kafka.deadletters import DeadLetters

log = logging.getLogger(__name__)

T = TypeVar("T")

BATCHES = Counter("clm_consumer_batches_total", "Batches processed", ["group", "outcome"])
RECORDS = Counter("clm_consumer_records_total", "Records consumed", ["group", "topic"])
BATCH_SECONDS = Histogram(
    "clm_consumer_batch_seconds",
    "Time to process one batch (decode, handle, commit)",
    ["group"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
LAG = Gauge("clm_consumer_lag", "Records behind the partition end", ["group", "topic", "partition"])
RETRIES = Counter(
    "clm_consumer_retries_total", "Batches retried after a transient error", ["group"]
)


class PoisonRecord(Exception):
    """Raised by a decoder or handler: this record can never succeed."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    KafkaConnectionError,
    KafkaTimeoutError,
    OperationalError,
    InterfaceError,
)


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, TRANSIENT_ERRORS)


@dataclass(frozen=True)
class Decoded(Generic[T]):
    record: ConsumerRecord
    value: T


Decoder = Callable[[ConsumerRecord], T]
Handler = Callable[[Sequence[Decoded[T]]], Awaitable[None]]
#: Called before every poll: every record returned so far is handled and committed.
BetweenBatches = Callable[[], Awaitable[None]]


class ConsumerLoop(Generic[T]):
    """Run ``handler`` over batches of decoded records until stopped or a bound is reached."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        *,
        group: str,
        decode: Decoder[T],
        handler: Handler[T],
        dead_letters: DeadLetters,
        max_records: int = 500,
        poll_timeout_ms: int = 500,
        fill_ms: int = 0,
        max_backoff: float = 10.0,
        between_batches: BetweenBatches | None = None,
    ) -> None:
        self.consumer = consumer
        self.group = group
        self.decode = decode
        self.handler = handler
        self.dead_letters = dead_letters
        self.max_records = max_records
        self.poll_timeout_ms = poll_timeout_ms
        self.fill_ms = fill_ms
        self.max_backoff = max_backoff
        self.between_batches = between_batches
        self.batches = 0
        self.records = 0

    async def run(
        self,
        stop: asyncio.Event,
        *,
        max_batches: int | None = None,
        idle_timeout: float | None = None,
    ) -> int:
        """Consume until ``stop`` is set, ``max_batches`` were handled, or nothing arrived for
        ``idle_timeout`` seconds. Returns the number of records handled."""
        last_data = time.monotonic()
        while not stop.is_set():
            if max_batches is not None and self.batches >= max_batches:
                break
            if self.between_batches is not None:
                await self.between_batches()
            records = await self._poll()
            if not records:
                if idle_timeout is not None and time.monotonic() - last_data > idle_timeout:
                    break
                continue
            last_data = time.monotonic()
            await self._process(records, stop)
        return self.records

    async def _poll(self) -> list[ConsumerRecord]:
        """Up to ``max_records``: what the first fetch brings, topped up from the fetches
        that complete within ``fill_ms`` of it.

        A fetch response may hold a single producer batch of one partition, far fewer records
        than ``max_records``; handling each as its own batch would pay the per-batch costs
        (transaction, commit, offset commit) for a few records while a backlog waits.
        """
        batch = await self.consumer.getmany(
            timeout_ms=self.poll_timeout_ms, max_records=self.max_records
        )
        records = [r for part in batch.values() for r in part]
        if not records or self.fill_ms <= 0:
            return records
        deadline = time.monotonic() + self.fill_ms / 1000
        while len(records) < self.max_records:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            more = await self.consumer.getmany(
                timeout_ms=left_ms, max_records=self.max_records - len(records)
            )
            if not more:
                break
            records.extend(r for part in more.values() for r in part)
        return records

    async def _process(self, records: list[ConsumerRecord], stop: asyncio.Event) -> None:
        started = time.perf_counter()
        backoff = 0.2
        while True:
            try:
                await self._handle_batch(records)
                outcome = "ok"
                break
            except Exception as exc:
                if is_transient(exc):
                    RETRIES.labels(self.group).inc()
                    log.warning(
                        "transient failure, retrying batch",
                        extra={"group": self.group, "error": repr(exc), "backoff": backoff},
                    )
                    if stop.is_set():
                        self._rewind(records)
                        return  # not committed: the next owner processes it again
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                log.warning(
                    "batch failed, isolating records",
                    extra={"group": self.group, "error": repr(exc), "records": len(records)},
                )
                await self._isolate(records)
                outcome = "isolated"
                break
        await self._commit(records)
        self.batches += 1
        self.records += len(records)
        BATCHES.labels(self.group, outcome).inc()
        BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - started)
        for topic, count in collections.Counter(r.topic for r in records).items():
            RECORDS.labels(self.group, topic).inc(count)
        self._update_lag(records)

    async def _handle_batch(self, records: list[ConsumerRecord]) -> None:
        decoded: list[Decoded[T]] = []
        poison: list[tuple[ConsumerRecord, PoisonRecord]] = []

        for record in records:
            try:
                decoded.append(Decoded(record, self.decode(record)))
            except PoisonRecord as exc:
                poison.append((record, exc))
            except Exception as exc:
                poison.append((record, PoisonRecord("undecodable", f"{type(exc).__name__}: {exc}")))
        if poison:
            await self._dead_letter(poison)
        if decoded:
            await self.handler(decoded)

    async def _isolate(self, records: list[ConsumerRecord]) -> None:
        for record in records:
            backoff = 0.2
            while True:
                try:
                    await self._handle_batch([record])
                    break
                except PoisonRecord as exc:
                    await self._dead_letter([(record, exc)])
                    break
                except Exception as exc:
                    if is_transient(exc):
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, self.max_backoff)
                        continue
                    log.exception("poison record", extra={"group": self.group})
                    await self._dead_letter(
                        [
                            (
                                record,
                                PoisonRecord("processing_failed", f"{type(exc).__name__}: {exc}"),
                            )
                        ]
                    )
                    break

    async def _dead_letter(self, poison: list[tuple[ConsumerRecord, PoisonRecord]]) -> None:
        await self.dead_letters.send_many(
            [
                self.dead_letters.build(
                    origin=record.topic,
                    code=exc.code,
                    reason=exc.reason,
                    payload=record.value,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                )
                for record, exc in poison
            ]
        )

    def _rewind(self, records: list[ConsumerRecord]) -> None:
        first: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        for tp, offset in first.items():
            # A partition revoked meanwhile: its new owner starts from the last commit.
            with contextlib.suppress(KafkaError, AssertionError, ValueError):
                self.consumer.seek(tp, offset)

    async def _commit(self, records: list[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced: the new owner re-reads from the last commit, and our
            # effects are idempotent, so nothing is lost or doubled.
            log.warning("offset commit failed after rebalance", extra={"error": str(exc)})

    def _update_lag(self, records: list[ConsumerRecord]) -> None:
        last: dict[TopicPartition, int] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            last[tp] = max(last.get(tp, -1), r.offset)
        for tp, offset in last.items():
            high = self.consumer.highwater(tp)
            if high is not None:
                LAG.labels(self.group, tp.topic, str(tp.partition)).set(max(0, high - offset - 1))


def create_consumer(
    bootstrap: str,
    *topic_names: str,
    group_id: str,
    client_id: str,
    auto_offset_reset: str = "earliest",
    session_timeout_ms: int = 10_000,
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topic_names,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(300, session_timeout_ms // 5),
        max_poll_interval_ms=300_000,
        # A fetch returns once it holds 1 MB or after 50 ms: full fetches while catching up,
        # at most 50 ms of added latency when live (the default 500 ms wait was paid on every
        # hop of an event by a broker that does not answer a waiting fetch early).
        fetch_max_wait_ms=50,
        fetch_min_bytes=1024 * 1024,
    )
