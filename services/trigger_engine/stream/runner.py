"""The partition owner's loop: consume, fold, flush actions, fire timers, checkpoint.

One :class:`Owner` per engine instance consumes ``clm.events`` and the hand-off topic in one
consumer group (range assignment: partition ``p`` of both topics goes to the same member)::

    poll ─▶ load missing states ─▶ fold (core, in place) ─▶ flush actions (commit) ─▶ publish
      ▲                                                                                  │
      └── checkpoint every CLM_CHECKPOINT_MS: states, rows, offsets, watermarks ◀─ timers

- **Ownership.** On assignment the owner claims the partitions in PostgreSQL (their
  generation goes up) and seeks to the offsets stored with their last checkpoint; its
  checkpoints carry the generations, and one that another owner has since claimed writes
  nothing (``store.Fenced``): a zombie never writes. On revocation it checkpoints first,
  so the next owner starts exactly where this one stopped, and keeps the states in memory
  in case the partitions come straight back (as they do in every eager rebalance).
- **Exactly once.** A record is folded once: records below a partition's checkpointed offset
  are skipped; after a crash the next owner replays from the checkpoint, and every effect
  of the replay has the id it had the first time (derived ids, ``ON CONFLICT DO NOTHING``;
  published actions are published again and dropped by the messenger as duplicates).
- **Actions leave fast.** A batch's actions are committed to the outbox right after the
  batch (one round trip, fenced) and published at once; the next checkpoint marks them
  published. The other rows wait for the checkpoint.
- **Timers** fire from memory by the partition's watermark (``partitions/watermark.py``).
- **Failure.** A record that makes the fold fail is dead-lettered and the partition is
  rebuilt from its checkpoint and replayed without it (a half-applied record never stays).
  A lost database keeps the loop retrying the same checkpoint, holding its states; a fenced
  checkpoint ends the loop (the supervisor restarts it, the group hands the partitions out).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import IllegalStateError, KafkaError
from aiokafka.structs import RecordMetadata

from services.trigger_engine.config_cache import EngineConfig
from services.trigger_engine.context import EngineContext
from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.partitions.watermark import caught_up, from_records
from services.trigger_engine.runs import outcomes
from services.trigger_engine.stream import handoff, store
from services.trigger_engine.stream.partition import PartitionState
from services.trigger_engine.stream.rows import next_release, outbox_kind, state_row
from services.trigger_engine.stream.unit_of_work import UnitOfWork
from shared import topics
from shared.envelope import decode_plain_event
from shared.kafka.admin import ensure_topics, partition_count
from shared.kafka.consumer import LAG, is_transient, top_up

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Customers stored before migration 0007 read, and given their partition, at a time.
_ADOPT_CHUNK = 2000

#: Seconds between two deletions of the journalled hand-offs the owned partitions consumed.
_PRUNE_HANDOFFS_EVERY = 10.0

#: SQLSTATEs after which the same statement may simply be tried again.
_RETRY_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "53300"})


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Owner) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.owner.revoked()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        await self.owner.assigned(list(assigned))


class Owner:
    """See the module. ``run`` is the job (tests bound it with ``idle_timeout``)."""

    def __init__(
        self,
        ctx: EngineContext,
        *,
        topic: str | None = None,
        handoff_topic: str | None = None,
        group: str | None = None,
    ) -> None:
        settings = ctx.settings
        self.ctx = ctx
        self.settings = settings
        self.topic = topic or settings.events_topic
        self.handoff_topic = handoff_topic or settings.handoff_topic
        self.group = group or settings.consumer_group
        self.parts: dict[int, PartitionState] = {}
        self.standby: dict[int, PartitionState] = {}
        self.lock = asyncio.Lock()
        self.count = 0
        self.config: EngineConfig | None = None
        self.revision: int | None = None
        #: one connection for what the loop waits on (loads, flushes, claims), one for the
        #: checkpoint written while the loop goes on
        self.connections: dict[str, asyncpg.Connection | None] = {"main": None, "checkpoint": None}
        self.inflight: asyncio.Task[_Written] | None = None
        #: checkpoints collected and written (sequence numbers: see ``pass_after``)
        self.collected = 0
        self.written = 0
        self.consumer: AIOKafkaConsumer | None = None
        self.to_mark: list[str] = []
        self.unsent: list[tuple[str, str, str]] = []
        #: hand-offs handed to the producer: (acknowledgement, key, body)
        self.sending: list[tuple[asyncio.Future[RecordMetadata], str, bytes]] = []
        self.handoffs_pruned_at = 0.0
        self.poison: set[tuple[str, int, int]] = set()
        #: customers a timer or a lifecycle pass failed on (see ``_isolate``)
        self.drop_timers: set[str] = set()
        self.skip_pass: set[str] = set()
        self.checkpoint_due = time.monotonic()
        self.force_checkpoint = False
        self.next_check = 0.0
        self.check: asyncio.Task[_Check | None] | None = None
        self.records = 0
        self.stop = asyncio.Event()

    # -- the job --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, idle_timeout: float | None = None) -> int:
        """Consume until ``stop`` (or ``idle_timeout`` seconds without records)."""
        settings = self.settings
        self.stop = stop
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.require_kafka_bootstrap(),
            group_id=self.group,
            client_id=f"clm-trigger-engine-{settings.instance_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=16 * 1024 * 1024,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=max(300, settings.kafka_session_timeout_ms // 5),
            max_poll_interval_ms=300_000,
            fetch_max_wait_ms=settings.consumer_fetch_wait_ms,
            fetch_min_bytes=1024 * 1024,
        )
        self.consumer = consumer
        try:
            await consumer.start()
            self.count = await partition_count(settings.require_kafka_bootstrap(), self.topic)
            # Co-partitioned with the events topic: partition p of both goes to p's owner.
            config = dataclasses.replace(settings.topic_config(), partitions=self.count)
            await ensure_topics(
                settings.require_kafka_bootstrap(), config, names=(self.handoff_topic,)
            )
            await self._check_partitions()
            await self._reload_config()
            consumer.subscribe([self.topic, self.handoff_topic], listener=_Rebalance(self))
            last_data = time.monotonic()
            while not stop.is_set():
                records = await self._poll()
                async with self.lock:
                    await self._tick(records)
                if records:
                    last_data = time.monotonic()
                elif idle_timeout is not None and time.monotonic() - last_data > idle_timeout:
                    break
            async with self.lock:
                if self.parts:
                    await self._final_checkpoint()
            return self.records
        finally:
            for task in (self.inflight, self.check):
                if task is not None:
                    task.cancel()
            with contextlib.suppress(Exception):
                await consumer.stop()
            for connection in self.connections.values():
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.close()
            self.parts.clear()
            self.standby.clear()

    async def _check_partitions(self) -> None:
        """Refuse to start on partition counts the stored states were not made for: every
        customer belongs to the partition of its key, so a changed count would give a
        customer two owners."""
        handoffs = await partition_count(
            self.settings.require_kafka_bootstrap(), self.handoff_topic
        )
        if handoffs != self.count:
            raise RuntimeError(
                f"{self.handoff_topic} has {handoffs} partitions, {self.topic} has "
                f"{self.count}: they must have as many (delete {self.handoff_topic} while "
                "the engine is stopped and it is created again)"
            )
        stored = await self._db(
            functools.partial(store.partition_count, topic=self.topic), what="partition check"
        )
        if stored not in (0, self.count):
            raise RuntimeError(
                f"{self.topic} has {self.count} partitions but the engine's stored states "
                f"are partitioned for {stored}: changing the partition count of {self.topic} "
                "is not supported (see docs/production.md, Partitions)"
            )

    # -- rebalances --------------------------------------------------------------------------

    async def revoked(self) -> None:
        async with self.lock:
            try:
                if self.parts:
                    await self._final_checkpoint()
                self.standby = self.parts
            except store.Fenced:
                log.warning("partitions were taken over before the revocation's checkpoint")
                self.standby = {}
            finally:
                # Whatever happened, nothing is folded for them until they are claimed again
                # (a checkpoint that did not finish leaves a generation the claim moves past).
                self.parts = {}

    async def assigned(self, assigned: Sequence[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        tps = set(assigned)
        mine = sorted({tp.partition for tp in tps if tp.topic == self.topic})
        async with self.lock:
            claimed = await self._claim(mine)
            fresh: list[PartitionState] = []
            for got in claimed:
                kept = self.standby.pop(got.partition, None)
                if kept is not None and kept.generation + 1 == got.generation:
                    kept.generation = got.generation  # nobody owned it since our checkpoint
                    part = kept
                else:
                    part = self._fresh(got)
                    fresh.append(part)
                self.parts[got.partition] = part
                for topic, offset in (
                    (self.topic, part.events_offset),
                    (self.handoff_topic, part.handoff_offset),
                ):
                    tp = TopicPartition(topic, got.partition)
                    if offset is not None and tp in tps:
                        consumer.seek(tp, offset)
            self.standby.clear()
            if fresh:
                await self._prime(fresh)
                await self._recover_outbox([part.partition for part in fresh])
            log.info(
                "partitions assigned",
                extra={"partitions": mine, "generations": [c.generation for c in claimed]},
            )

    async def _claim(self, partitions: Sequence[int]) -> list[store.Claimed]:
        owner = self.settings.instance_id
        return await self._db(
            lambda c: store.claim(c, self.topic, partitions, count=self.count, owner=owner),
            what="partition claim",
        )

    def _fresh(self, got: store.Claimed) -> PartitionState:
        return PartitionState(
            partition=got.partition,
            generation=got.generation,
            events_offset=got.events_offset,
            handoff_offset=got.handoff_offset,
            watermark=got.watermark,
            pass_version=got.pass_version,
            pass_cursor=got.pass_cursor,
        )

    async def _prime(self, parts: Sequence[PartitionState]) -> None:
        """Partitions new to this instance: their timers, and the rows stored before rows
        recorded their partition (adopted: the next checkpoint records it, and their timers)."""
        for part in parts:
            for key, at in await self._db(
                functools.partial(store.timer_index, partition=part.partition), what="timer index"
            ):
                part.arm(key, at)
        unadopted = await self._db(store.unadopted, what="adoption")
        by_partition = {part.partition: part for part in parts}
        mine = [key for key in unadopted if self._partition(key) in by_partition]
        grace = self.settings.late_timer_grace
        for start in range(0, len(mine), _ADOPT_CHUNK):
            chunk = mine[start : start + _ADOPT_CHUNK]
            states, _ = await self._db(functools.partial(store.load, keys=chunk), what="adoption")
            adopted = [
                (key, self._partition(key), next_release(state, grace=grace))
                for key, state in states.items()
            ]
            await self._db(functools.partial(store.adopt, rows=adopted), what="adoption")
            for key, partition, released in adopted:
                if released is not None:
                    by_partition[partition].arm(key, released)
        if mine:
            log.info("adopted stored customers", extra={"customers": len(mine)})

    async def _recover_outbox(self, partitions: Sequence[int]) -> None:
        """Publish what a previous owner committed to the outbox but did not publish (the
        partitions are new to this instance: nothing of theirs is on its way already)."""
        rows = await self._db(lambda c: store.unpublished(c, partitions), what="outbox recovery")
        mine = set(partitions)
        self.unsent.extend(
            (row_id, key, payload)
            for row_id, key, payload, partition in rows
            if (partition if partition is not None else self._partition(key)) in mine
        )

    # -- one tick: fold what arrived, then timers, passes, flush, checkpoint ---------------

    async def _tick(self, records: list[ConsumerRecord]) -> None:
        started = time.perf_counter()
        settings = self.settings
        if records:
            # Read after the records were fetched: a rule stored before they were produced
            # applies to them, whichever instance's API stored it.
            await self._follow_config(await self._db(store.revision, what="revision"))
        config = self.config
        assert config is not None
        unit = UnitOfWork(
            config=config,
            now=datetime.now(UTC),
            grace=settings.late_timer_grace,
            partitions=self.count,
            drop_timers=self.drop_timers,
            skip_pass=self.skip_pass,
        )
        if records:
            await self._fold(unit, records)
        await self._caught_up()
        await self._fire_timers(unit)
        await self._lifecycle_pass(unit)
        await self._send_handoffs(unit)
        await self._flush(unit)
        self._count(unit)
        if records:
            m.FOLD_SECONDS.observe(time.perf_counter() - started)
        if self.inflight is not None and self.inflight.done():
            await self._checkpoint_written()  # raises what the checkpoint raised
        elif self.inflight is not None and self._dirty() > self.settings.state_cache_size // 4:
            # Changed states cannot leave memory before a checkpoint has them: while
            # PostgreSQL is slow, stop folding (back-pressure) rather than grow past the
            # memory bound and the replay a crash would cost.
            m.CHECKPOINT_WAITS.inc()
            await self._checkpoint_written()
        # A checkpoint still being written is not waited for: the next is collected once it
        # is done. Under load checkpoints then follow each other as fast as PostgreSQL takes
        # them, each covering more, and the fold never stalls behind a write.
        if self.inflight is None and (
            self.force_checkpoint or time.monotonic() >= self.checkpoint_due
        ):
            await self._checkpoint()

    async def _fold(self, unit: UnitOfWork, records: list[ConsumerRecord]) -> None:
        decoded: list[tuple[PartitionState, ConsumerRecord, Any]] = []
        missing: set[str] = set()
        poison: list[tuple[ConsumerRecord, str, str]] = []
        for record in records:
            part = self.parts.get(record.partition)
            if part is None or self._seen(part, record):
                continue
            if (record.topic, record.partition, record.offset) in self.poison:
                self._advance_offset(part, record)
                continue
            try:
                if record.topic == self.topic:
                    value: Any = decode_plain_event(record.value or b"")
                else:
                    value = handoff.decode(record.value or b"")
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                poison.append((record, "undecodable", f"{type(exc).__name__}: {exc}"))
                self._advance_offset(part, record)
                continue
            decoded.append((part, record, value))
            missing.update(k for k in unit.keys_for(part, value) if part.absent(k))
        if missing:
            await self._load(missing)
        rebuilt: set[int] = set()
        for part, record, value in decoded:
            if record.partition in rebuilt:
                continue  # read again from the checkpoint, after the seek
            try:
                if record.topic == self.topic:
                    unit.event(part, value, record.value, record.offset)
                else:
                    unit.handoff(part, value)
            except Exception as exc:
                log.exception("record failed in the fold; dead-lettered, partition rebuilt")
                poison.append((record, "processing_failed", f"{type(exc).__name__}: {exc}"))
                self.poison.add((record.topic, record.partition, record.offset))
                await self._rebuild(part)
                rebuilt.add(record.partition)
                continue
            self._advance_offset(part, record)
        self._watermarks_from(r for r in records if r.partition not in rebuilt)
        self.records += len(records)
        if poison:
            await self._dead_letter(poison)

    def _seen(self, part: PartitionState, record: ConsumerRecord) -> bool:
        offset = part.events_offset if record.topic == self.topic else part.handoff_offset
        if offset is None:
            part.started.setdefault(record.topic, record.offset)
        return offset is not None and record.offset < offset

    def _advance_offset(self, part: PartitionState, record: ConsumerRecord) -> None:
        if record.topic == self.topic:
            part.events_offset = max(part.events_offset or 0, record.offset + 1)
        else:
            part.handoff_offset = max(part.handoff_offset or 0, record.offset + 1)

    async def _load(self, keys: set[str]) -> None:
        """Read the customers' states (and identity links) missing from memory; then, in a
        second round, the local customers their links point to (a merge needs both)."""
        for _ in range(2):
            wanted = sorted(keys)
            states, links = await self._db(
                functools.partial(store.load, keys=wanted), what="state load"
            )
            for key, state in states.items():
                part = self.parts.get(self._partition(key))
                if part is not None and part.absent(key):
                    part.put(state)
            keys = set()
            for key, target in links.items():
                part = self.parts.get(self._partition(key))
                if part is None or key in part.tombstones:
                    continue
                part.links.setdefault(key, target)
                if self._partition(target) == part.partition and part.absent(target):
                    keys.add(target)
            if not keys:
                return

    async def _rebuild(self, part: PartitionState) -> None:
        """Throw away what the partition folded since its checkpoint and replay from there
        (the record that failed is skipped the second time)."""
        consumer = self.consumer
        assert consumer is not None
        if self.inflight is not None:  # what it covers is the checkpoint to go back to
            await asyncio.wait([self.inflight])  # (acted on at the end of the tick)
        got = await self._db(
            lambda c: store.checkpointed(c, self.topic, part.partition, generation=part.generation),
            what="rebuild",
        )
        fresh = self._fresh(got)
        await self._prime([fresh])
        self.parts[part.partition] = fresh
        for topic, offset in (
            (self.topic, fresh.events_offset),
            (self.handoff_topic, fresh.handoff_offset),
        ):
            offset = offset if offset is not None else part.started.get(topic)
            if offset is not None:
                consumer.seek(TopicPartition(topic, part.partition), offset)

    def _watermarks_from(self, records: Iterable[ConsumerRecord]) -> None:
        lateness = self.settings.watermark_lateness
        marks = from_records(
            ((r.topic, r.partition, r.timestamp) for r in records), lateness=lateness
        )
        for (topic, partition), mark in marks.items():
            part = self.parts.get(partition)
            if part is None:
                continue
            if topic == self.topic:
                part.watermark = mark if part.watermark is None else max(part.watermark, mark)
            else:
                part.handoff_moved(mark)

    async def _caught_up(self) -> None:
        """Every ``CLM_WATERMARK_CHECK_MS``: partitions that reached their end move their
        watermark to the instant of the check (see ``partitions/watermark.py``). The check
        runs beside the loop (its requests wait behind the consumer's fetch); its result is
        applied here, after a fold: every record the consumer returned before the check read
        its positions has been folded by then."""
        check = self.check
        if check is not None and check.done():
            self.check = None
            found = check.result()
            if found is not None:
                self._apply_check(found)
        consumer = self.consumer
        if self.check is not None or consumer is None or not self.parts:
            return
        if time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + self.settings.watermark_check_ms / 1000
        self.check = asyncio.create_task(self._read_ends(consumer, dict(self.parts)))

    async def _read_ends(
        self, consumer: AIOKafkaConsumer, parts: dict[int, PartitionState]
    ) -> _Check | None:
        tps = [
            TopicPartition(topic, partition)
            for partition in sorted(parts)
            for topic in (self.topic, self.handoff_topic)
        ]
        checked_at = datetime.now(UTC)
        try:
            # Bounded: a position being reset waits for the group coordinator (a rebalance).
            async with asyncio.timeout(2.0):
                ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
                positions = {tp: await consumer.position(tp) for tp in tps}
        except (KafkaError, IllegalStateError, AssertionError, TimeoutError) as exc:
            log.debug("caught-up check skipped", extra={"error": repr(exc)})
            return None
        highs = {tp: consumer.highwater(tp) for tp in tps}
        return _Check(checked_at, parts, ends, positions, highs)

    def _apply_check(self, check: _Check) -> None:
        mark = check.checked_at - self.settings.watermark_lateness
        for tp, end in check.ends.items():
            position, high = check.positions[tp], check.highs[tp]
            lag = max(0, max(end, high or 0) - position)
            LAG.labels(self.group, tp.topic, str(tp.partition)).set(lag)
            part = self.parts.get(tp.partition)
            # Only the very partition state the check was made for (not one rebuilt or
            # claimed again since, which may have gone back to older offsets).
            if part is None or part is not check.parts.get(tp.partition):
                continue
            if not caught_up(position, end, high):
                continue
            if tp.topic == self.topic:
                part.watermark = mark if part.watermark is None else max(part.watermark, mark)
            else:
                part.handoff_moved(mark)

    async def _fire_timers(self, unit: UnitOfWork) -> None:
        due: list[tuple[PartitionState, str]] = []
        for part in self.parts.values():
            if part.watermark is not None:
                until = min(part.watermark, unit.now)
                due.extend((part, key) for key in part.due(until))
        if not due:
            return
        missing = {key for part, key in due if key not in part.states}
        if missing:
            await self._load(missing)
        rebuilt: set[int] = set()
        for part, key in due:
            if part.partition in rebuilt:
                continue
            try:
                unit.fire(part, key)
            except Exception:
                m.TIMERS_FAILED.inc()
                self.drop_timers.add(key)
                await self._isolate(part, key, "a timer failed to fire; it is dropped")
                rebuilt.add(part.partition)
        for timer_id in unit.dropped:
            log.error("timer dropped after it failed to fire", extra={"timer_id": timer_id})

    async def _isolate(self, part: PartitionState, key: str, what: str) -> None:
        """An input of ``key`` other than a record failed half-way (states are advanced in
        place): the partition is rebuilt from its checkpoint, and the input is not tried
        again (the owner's ``drop_timers`` / ``skip_pass``)."""
        log.exception(f"{what}; partition rebuilt", extra={"customer_key": key})
        await self._rebuild(part)

    async def _lifecycle_pass(self, unit: UnitOfWork) -> None:
        """One chunk per partition of the pass for a newer lifecycle model (see the engine
        README, "Lifecycle model changes")."""
        config = unit.config
        version = config.lifecycle_version
        if version <= 0:
            return
        chunk = self.settings.lifecycle_pass_chunk
        for part in self.parts.values():
            if part.pass_version is None and await self._pass_finished(version):
                # Upgraded from before passes were kept per partition: this one is done.
                part.pass_version, part.pass_cursor = version, None
                continue
            if part.pass_version is None or part.pass_version < version:
                # Start: every customer in memory is written first, so the scan sees them all.
                part.pass_version, part.pass_cursor = version, ""
                part.pass_after = self.collected + 1
                self.force_checkpoint = True
                continue
            if (
                part.pass_version != version
                or part.pass_cursor is None
                or self.written < part.pass_after
            ):
                continue
            keys = await self._scan(part.partition, part.pass_cursor, chunk)
            missing = {key for key in keys if key not in part.states}
            if missing:
                await self._load(missing)
            before = len(unit.transitions)
            at = config.lifecycle_at or unit.now
            try:
                for key in keys:
                    unit.reevaluate(part, key, version, at=at)
            except Exception:
                m.LIFECYCLE_PASS_FAILURES.inc()
                self.skip_pass.add(key)
                await self._isolate(part, key, "a lifecycle pass failed on a customer; skipped")
                continue
            transitions = len(unit.transitions) - before
            part.pending.pass_customers += len(keys)
            part.pending.pass_transitions += transitions
            part.pass_cursor = keys[-1] if len(keys) == chunk else None
            m.LIFECYCLE_REEVALUATED.inc(len(keys))
            m.LIFECYCLE_PASS_TRANSITIONS.inc(transitions)

    async def _pass_finished(self, version: int) -> bool:
        return await self._db(
            functools.partial(store.pass_finished, version=version), what="lifecycle pass"
        )

    async def _scan(self, partition: int, after: str, limit: int) -> list[str]:
        return await self._db(
            lambda c: store.scan(c, partition, after=after, limit=limit), what="lifecycle pass"
        )

    async def _send_handoffs(self, unit: UnitOfWork) -> None:
        producer = self.ctx.producer
        for key, record in unit.handoffs:
            body = handoff.encode(record)
            future = await producer.send(self.handoff_topic, body, key=key.encode())
            self.sending.append((future, key, body))

    async def _flush(self, unit: UnitOfWork) -> None:
        """Commit the unit's actions to the outbox, then publish them."""
        if unit.actions:
            touched = sorted({row[2] for row in unit.actions})
            fence = [(p, self.parts[p].generation) for p in touched if p in self.parts]
            new = set(
                await self._db(
                    lambda c: store.flush_actions(c, self.topic, fence, unit.actions),
                    what="action flush",
                )
            )
            self.unsent.extend((row[0], row[1], row[4]) for row in unit.actions if row[0] in new)
            for rule in unit.action_rules:
                m.ACTIONS.labels(rule).inc()
        await self._publish()

    async def _publish(self) -> None:
        """Hand the committed rows not yet published to the producer; each acknowledged one
        is marked published by the next checkpoint (a failed one is tried again)."""
        if not self.unsent:
            return
        rows, self.unsent = self.unsent, []
        producer = self.ctx.producer
        for row in rows:
            _, key, payload = row
            try:
                future = await producer.send(topics.ACTIONS, payload.encode(), key=key.encode())
            except Exception as exc:
                if not is_transient(exc) and not isinstance(exc, KafkaError):
                    raise
                log.warning("publishing failed; trying again", extra={"error": repr(exc)})
                self.unsent.append(row)
                continue
            future.add_done_callback(lambda done, row=row: self._published(row, done))

    def _published(self, row: tuple[str, str, str], done: asyncio.Future[Any]) -> None:
        if done.cancelled() or done.exception() is not None:
            self.unsent.append(row)
            return
        self.to_mark.append(row[0])
        m.OUTBOX_PUBLISHED.labels(outbox_kind(row[0])).inc()

    def _count(self, unit: UnitOfWork) -> None:
        if unit.folded:
            m.EVENTS.labels("folded").inc(unit.folded)
        if unit.duplicates:
            m.EVENTS.labels("duplicate").inc(unit.duplicates)
        if unit.erased:
            m.EVENTS.labels("erased").inc(unit.erased)
        if unit.merges:
            m.MERGES.inc(unit.merges)
        for from_stage, to_stage, cause in unit.transitions:
            m.STAGE_TRANSITIONS.labels(from_stage, to_stage, cause).inc()
        outcomes.count(unit.outcomes)
        for kind, lateness in unit.fired:
            m.TIMERS_FIRED.labels(kind).inc()
            m.TIMER_LATENESS.labels(kind).observe(lateness)

    # -- checkpoints ------------------------------------------------------------------------

    async def _checkpoint(self, *, final: bool = False) -> None:
        """Checkpoint every owned partition: the rows are collected (and the states encoded)
        now, and written in one call (fenced) while the loop goes on folding, one checkpoint
        at a time. ``final`` (revocation, shutdown): written before returning."""
        await self._checkpoint_written()
        now = datetime.now(UTC)
        grace = self.settings.late_timer_grace
        parts = [self.parts[p] for p in sorted(self.parts)]
        pending = [part.take_pending() for part in parts]
        states = [
            state_row(state, part.partition, next_release(state, grace=grace))
            for part in parts
            for key in sorted(part.dirty)
            if (state := part.states.get(key)) is not None
        ]
        for part in parts:
            part.dirty.clear()
        rows = store.CheckpointRows(
            marks=[
                (
                    part.partition,
                    part.generation,
                    part.events_offset,
                    part.handoff_offset,
                    part.published_watermark(),
                    part.pass_version,
                    part.pass_cursor,
                    todo.pass_customers,
                    todo.pass_transitions,
                )
                for part, todo in zip(parts, pending, strict=True)
            ],
            states=states,
            removed=sorted({key for todo in pending for key in todo.removed}),
            links=sorted({item for todo in pending for item in todo.links.items()}),
            merges=[merge for todo in pending for merge in todo.merges],
            transitions=[row for todo in pending for row in todo.transitions],
            runs=[row for todo in pending for row in todo.runs],
            events=[row for todo in pending for row in todo.events],
            log=[row.row(key) for todo in pending for key, row in todo.log.items()],
            outbox=[row for todo in pending for row in todo.outbox],
            published=self.to_mark,
            erased=[erased for todo in pending for erased in todo.erased],
        )
        self.to_mark = []
        # The hand-offs caused by what this checkpoint covers must be on the topic before it
        # moves their offsets.
        sending, self.sending = self.sending, []
        self.force_checkpoint = False
        self.checkpoint_due = time.monotonic() + self.settings.checkpoint_ms / 1000
        self.collected += 1
        self.inflight = asyncio.create_task(self._write(self.collected, rows, sending, now))
        if final:
            await self._checkpoint_written(final=True)

    async def _final_checkpoint(self) -> None:
        """Before the partitions go: what is being published is acknowledged, so that this
        checkpoint marks it, and then everything is written."""
        await self._publish()
        await self.ctx.producer.flush()
        await self._checkpoint(final=True)

    async def _checkpoint_written(self, *, final: bool = False) -> None:
        """Wait for the checkpoint in flight (raising what it raised), then act on what it
        says, here in the loop (under its lock: never in the middle of a fold)."""
        inflight, self.inflight = self.inflight, None
        if inflight is None:
            return
        written = await inflight
        self.written = written.seq
        if not final:
            await self._after_checkpoint(written)

    async def _write(
        self,
        seq: int,
        rows: store.CheckpointRows,
        sending: list[tuple[asyncio.Future[RecordMetadata], str, bytes]],
        now: datetime,
    ) -> _Written:
        if sending:
            placed = await asyncio.gather(*(future for future, _, _ in sending))
            sent = [
                (key, body, meta.partition, meta.offset)
                for (_, key, body), meta in zip(sending, placed, strict=True)
            ]
            await self._db(
                lambda c: store.journal_handoffs(c, sent),
                what="hand-off journal",
                connection="checkpoint",
            )
        result = await self._db(
            lambda c: store.checkpoint(c, self.topic, rows, now=now),
            what="checkpoint",
            connection="checkpoint",
        )
        if time.monotonic() >= self.handoffs_pruned_at + _PRUNE_HANDOFFS_EVERY:
            self.handoffs_pruned_at = time.monotonic()
            owned = [mark[0] for mark in rows.marks]
            await self._db(
                lambda c: store.prune_handoffs(c, self.topic, owned),
                what="hand-off journal",
                connection="checkpoint",
            )
        # After the call: every hand-off sent before the other partitions' watermarks it
        # read were stored has a timestamp before this instant.
        read_at = datetime.now(UTC)
        m.CHECKPOINTS.inc()
        m.CHECKPOINT_ROWS.inc(len(rows.states))
        outbox = {row[0]: row for row in rows.outbox}
        self.unsent.extend(
            (row_id, outbox[row_id][1], outbox[row_id][4]) for row_id in result.to_publish
        )
        return _Written(seq, result, rows, read_at)

    async def _after_checkpoint(self, written: _Written) -> None:
        """What a committed checkpoint tells: configuration changes, the other partitions'
        watermarks, erasures to carry out; and its states may now be evicted."""
        result, rows = written.result, written.rows
        await self._follow_config(result.revision)
        marks = list(result.watermarks.values())
        if marks and all(mark is not None for mark in marks) and len(marks) >= self.count:
            floor = min(mark for mark in marks if mark is not None)
            for part in self.parts.values():
                part.remote_reads.append((written.read_at, floor))
        for _, key in rows.erased:
            erased_on = self.parts.get(self._partition(key))
            if erased_on is not None:
                erased_on.tombstones.discard(key)
        checkpointed = {
            (topic, mark[0]): offset
            for mark in rows.marks
            for topic, offset in ((self.topic, mark[2]), (self.handoff_topic, mark[3]))
        }
        self.poison = {
            (topic, partition, offset)
            for topic, partition, offset in self.poison
            if offset >= (checkpointed.get((topic, partition)) or 0)
        }
        if result.erasures:
            self._erase(result.erasures, now=written.read_at)
        capacity = max(1, self.settings.state_cache_size // max(1, len(self.parts)))
        for part in self.parts.values():
            part.evict(capacity)
        self._gauges(written.read_at)

    def _erase(self, erasures: list[tuple[uuid.UUID, str, datetime]], *, now: datetime) -> None:
        """Carry out the erasures asked for the owned partitions (the next checkpoint, forced,
        stores them); the customer's actions not yet published are not published."""
        config = self.config
        assert config is not None
        unit = UnitOfWork(
            config=config, now=now, grace=self.settings.late_timer_grace, partitions=self.count
        )
        erased: set[str] = set()
        for erasure_id, key, requested_at in erasures:
            part = self.parts.get(self._partition(key))
            if part is None or any(e == erasure_id for e, _ in part.pending.erased):
                continue
            unit.erase(part, erasure_id, key, requested_at=requested_at)
            erased.add(key)
        if erased:
            self.unsent = [row for row in self.unsent if row[1] not in erased]
            self.force_checkpoint = True

    def _gauges(self, now: datetime) -> None:
        parts = self.parts.values()
        m.PARTITIONS_OWNED.set(len(self.parts))
        m.STATES_IN_MEMORY.set(sum(len(part.states) for part in parts))
        m.TIMERS_PENDING.set(sum(len(part.released) for part in parts))
        m.TIMER_BACKLOG.set(sum(at <= now for part in parts for at in part.released.values()))

    async def _follow_config(self, revision: int) -> None:
        if revision != self.revision:
            await self._reload_config()
            self.revision = revision

    async def _reload_config(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with self.ctx.sessions() as session:
                    self.ctx.config.invalidate()
                    self.config = await self.ctx.config.get(session)
                return
            except Exception as exc:
                if not _transient(exc) or self.stop.is_set():
                    raise
                m.CHECKPOINT_RETRIES.labels("configuration").inc()
                log.warning(
                    "reading the configuration failed; trying again", extra={"error": repr(exc)}
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    # -- helpers ----------------------------------------------------------------------------

    async def _db(
        self,
        call: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        what: str,
        connection: str = "main",
    ) -> T:
        """``call`` on one of the owner's connections, again after a transient failure (a
        lost connection is opened anew), with backoff, until it works or the owner stops."""
        backoff = 0.2
        while True:
            current = self.connections[connection]
            try:
                if current is None or current.is_closed():
                    current = await store.connect(
                        self.settings.require_database_url(),
                        wait_for_flush=connection == "checkpoint",
                    )
                    self.connections[connection] = current
                return await call(current)
            except store.Fenced:
                raise
            except Exception as exc:
                if not _transient(exc) or self.stop.is_set():
                    raise
                m.CHECKPOINT_RETRIES.labels(what).inc()
                log.warning(f"{what} failed; trying again", extra={"error": repr(exc)})
                if current is not None and not current.is_closed():
                    with contextlib.suppress(Exception):
                        await current.close()
                self.connections[connection] = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _dirty(self) -> int:
        return sum(len(part.dirty) for part in self.parts.values())

    def _partition(self, key: str) -> int:
        return handoff.partition_of(key, self.count)

    async def _poll(self) -> list[ConsumerRecord]:
        """What one fetch brings, topped up for up to ``CLM_CONSUMER_FILL_MS`` when behind."""
        consumer = self.consumer
        assert consumer is not None
        settings = self.settings
        timeout = min(500, settings.watermark_check_ms, settings.checkpoint_ms)
        batch = await consumer.getmany(
            timeout_ms=timeout, max_records=settings.consumer_max_records
        )
        records = [r for part in batch.values() for r in part]
        # Top up only when behind (a fetch brought a tenth of a batch or more): when live,
        # the few records a fetch brings go at once.
        if len(records) < max(1, settings.consumer_max_records // 10):
            return records
        return await top_up(
            consumer,
            records,
            max_records=settings.consumer_max_records,
            fill_ms=settings.consumer_fill_ms,
        )

    async def _dead_letter(self, poison: list[tuple[ConsumerRecord, str, str]]) -> None:
        letters = self.ctx.dead_letters
        await letters.send_many(
            [
                letters.build(
                    origin=record.topic,
                    code=code,
                    reason=reason,
                    payload=record.value,
                    partition=record.partition,
                    offset=record.offset,
                    key=record.key,
                )
                for record, code, reason in poison
            ]
        )


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", None) or ""
        return state.startswith("08") or state in _RETRY_SQLSTATES
    return isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError) or is_transient(exc)


@dataclasses.dataclass(frozen=True)
class _Check:
    """A caught-up check: when it began, the partitions it was made for, what it read."""

    checked_at: datetime
    parts: dict[int, PartitionState]
    ends: dict[TopicPartition, int]
    positions: dict[TopicPartition, int]
    highs: dict[TopicPartition, int | None]


@dataclasses.dataclass(frozen=True)
class _Written:
    """A committed checkpoint: its sequence number, answer and rows, and when it returned."""

    seq: int
    result: store.Checkpointed
    rows: store.CheckpointRows
    read_at: datetime
