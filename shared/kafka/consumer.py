"""The consumer loop every service uses.

Batched ``getmany``; offsets are committed only after the handler returned (after its
database commit). Each record is decoded once per poll. Transient failures (database or
broker unreachable) retry the same decoded batch with backoff and commit nothing. Any other
failure is isolated record by record: the record that still fails goes to
``clm.dead-letters`` with its reason and its offset is committed, so one poison record never
stalls a partition. A poll's poison records are dead-lettered once, after the others were
handled, however often the batch was retried.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from prometheus_client import Counter, Gauge, Histogram

from shared.kafka.deadletters import DeadLetters
from shared.transient import is_transient as is_transient  # re-exported for the services

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


@dataclass(frozen=True)
class Decoded(Generic[T]):
    record: ConsumerRecord
    value: T


Decoder = Callable[[ConsumerRecord], T]
Handler = Callable[[Sequence[Decoded[T]]], Awaitable[None]]


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
        if not records:
            return records
        return await top_up(
            self.consumer, records, max_records=self.max_records, fill_ms=self.fill_ms
        )

    async def _process(self, records: list[ConsumerRecord], stop: asyncio.Event) -> None:
        """Decode every record once, handle the batch (retrying transient failures, isolating
        the records of a batch that fails otherwise), dead-letter the poison records once,
        then commit. Stopped during a transient retry: nothing is committed and the records
        are read again (by us or by the partition's next owner)."""
        started = time.perf_counter()
        decoded, poison = self._decode(records)
        outcome = "ok"
        if decoded:
            try:
                if not await self._retrying(lambda: self.handler(decoded), stop):
                    self._rewind(records)
                    return
            except Exception as exc:
                log.warning(
                    "batch failed, isolating records",
                    extra={"group": self.group, "error": repr(exc), "records": len(records)},
                )
                isolated = await self._isolate(decoded, stop)
                if isolated is None:
                    self._rewind(records)
                    return
                poison.extend(isolated)
                outcome = "isolated"
        if poison and not await self._retrying(lambda: self._dead_letter(poison), stop):
            self._rewind(records)
            return
        await self._commit(records)
        self.batches += 1
        self.records += len(records)
        BATCHES.labels(self.group, outcome).inc()
        BATCH_SECONDS.labels(self.group).observe(time.perf_counter() - started)
        for topic, count in collections.Counter(r.topic for r in records).items():
            RECORDS.labels(self.group, topic).inc(count)
        self._update_lag(records)

    def _decode(
        self, records: list[ConsumerRecord]
    ) -> tuple[list[Decoded[T]], list[tuple[ConsumerRecord, PoisonRecord]]]:
        decoded: list[Decoded[T]] = []
        poison: list[tuple[ConsumerRecord, PoisonRecord]] = []
        for record in records:
            try:
                decoded.append(Decoded(record, self.decode(record)))
            except PoisonRecord as exc:
                poison.append((record, exc))
            except Exception as exc:
                poison.append((record, PoisonRecord("undecodable", f"{type(exc).__name__}: {exc}")))
        return decoded, poison

    async def _retrying(self, attempt: Callable[[], Awaitable[None]], stop: asyncio.Event) -> bool:
        """Run ``attempt`` until it succeeds, retrying transient failures with backoff.
        Returns False if ``stop`` was set meanwhile (the attempt never succeeded); any other
        failure is raised."""
        backoff = 0.2
        while True:
            try:
                await attempt()
                return True
            except Exception as exc:
                if not is_transient(exc):
                    raise
                RETRIES.labels(self.group).inc()
                log.warning(
                    "transient failure, retrying",
                    extra={"group": self.group, "error": repr(exc), "backoff": backoff},
                )
                if stop.is_set():
                    return False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(backoff):
                        await stop.wait()
                backoff = min(backoff * 2, self.max_backoff)

    async def _isolate(
        self, decoded: list[Decoded[T]], stop: asyncio.Event
    ) -> list[tuple[ConsumerRecord, PoisonRecord]] | None:
        """Handle each record on its own; the ones that still fail are returned as poison.
        ``None`` if stopped during a transient retry."""
        poison: list[tuple[ConsumerRecord, PoisonRecord]] = []
        for item in decoded:
            try:
                if not await self._retrying(functools.partial(self.handler, [item]), stop):
                    return None
            except PoisonRecord as exc:
                poison.append((item.record, exc))
            except Exception as exc:
                log.exception("poison record", extra={"group": self.group})
                reason = f"{type(exc).__name__}: {exc}"
                poison.append((item.record, PoisonRecord("processing_failed", reason)))
        return poison

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


async def top_up(
    consumer: AIOKafkaConsumer,
    records: list[ConsumerRecord],
    *,
    max_records: int,
    fill_ms: int,
) -> list[ConsumerRecord]:
    """``records`` (what a fetch brought) topped up with what the fetches completing within
    ``fill_ms`` bring, up to ``max_records`` in all."""
    if fill_ms <= 0:
        return records
    deadline = time.monotonic() + fill_ms / 1000
    while len(records) < max_records:
        left_ms = int((deadline - time.monotonic()) * 1000)
        if left_ms <= 0:
            break
        more = await consumer.getmany(timeout_ms=left_ms, max_records=max_records - len(records))
        if not more:
            break
        records.extend(r for part in more.values() for r in part)
    return records
