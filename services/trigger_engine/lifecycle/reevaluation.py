"""Making a lifecycle model change retroactive: every existing customer follows the new model.

Without this a customer's stage would follow a new ``PUT /v1/lifecycle`` only at their next
event or timer. The job (one per instance, :class:`LifecyclePasses`) notices a stored
version newer than the last one whose pass finished and walks ``engine.customers`` in key
order, a chunk (``CLM_LIFECYCLE_PASS_CHUNK``) per transaction:

1. read the engine configuration and check it is that version (a newer ``PUT`` supersedes
   the pass: the next round starts over under the newest version);
2. lock the pass's row (``engine.lifecycle_passes``, created on first use) with
   ``FOR UPDATE SKIP LOCKED``: one instance works a pass at a time, the others skip;
3. lock the chunk's customers in key order and fold ``LifecycleChanged`` into each, exactly
   as the timer worker folds a timer (:func:`~..processing.loader.lock_states`,
   :class:`~..processing.fold.Fold`, :func:`~..processing.writer.write_fold`): the stage
   the model gives now (a ``"model"`` transition starting stage rules), the stage timer;
4. write the few customers that moved, and the pass's cursor, in the same transaction.

So a crash loses at most an uncommitted chunk, which is redone; a customer is moved once
per version (a second look finds nothing to change). Customer locks are held for one
chunk at a time, and the event consumer gets the event loop between chunks.

No batch can write a stale stage behind the pass: the consumer and the timer worker read
the configuration after locking their customers, so one that locks a customer after the
pass moved it sees the new model, and one that locked it before is waited for by the pass
(which then re-evaluates what that batch wrote).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.config_cache import EngineConfig
from services.trigger_engine.context import EngineContext
from services.trigger_engine.core.inputs import LifecycleChanged
from services.trigger_engine.lifecycle import passes
from services.trigger_engine.lifecycle import repository as lifecycle_repo
from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.processing.committed import after_commit
from services.trigger_engine.processing.fold import Fold
from services.trigger_engine.processing.loader import lock_states
from services.trigger_engine.processing.retry import MAX_ATTEMPTS, retryable
from services.trigger_engine.processing.writer import Written, write_fold
from services.trigger_engine.wakeup import wait_for_work
from shared.db import transaction
from shared.kafka.consumer import is_transient

log = logging.getLogger(__name__)

_NEWEST = text(
    "SELECT v.version, p.version IS NOT NULL, p.finished_at IS NOT NULL, "
    "coalesce(p.total, 0), coalesce(p.customers, 0) "
    "FROM (SELECT max(version) AS version FROM engine.lifecycle_versions) AS v "
    "LEFT JOIN engine.lifecycle_passes AS p ON p.version = v.version"
)


@dataclass(frozen=True)
class Chunk:
    """What one round did."""

    worked: bool
    version: int = 0
    customers: int = 0
    written: Written | None = None
    started: passes.LifecyclePass | None = None
    finished: passes.LifecyclePass | None = None
    progress: passes.LifecyclePass | None = None


NOTHING: Final = Chunk(worked=False)


class LifecyclePasses:
    """The background job (see the module); ``round`` is one chunk, for tests."""

    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        #: customers still to take one at a time after a chunk failed
        self._careful = 0
        self._superseded: set[int] = set()

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.ctx.settings
        while not stop.is_set():
            chunk = await self.round()
            if not chunk.worked:
                await wait_for_work(
                    self.ctx.lifecycle_wake, stop, timeout=settings.lifecycle_pass_poll_seconds
                )
            elif settings.lifecycle_pass_pause_seconds > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(settings.lifecycle_pass_pause_seconds):
                        await stop.wait()
            else:
                await asyncio.sleep(0)  # let the consumer and the API in between chunks

    async def round(self) -> Chunk:
        """Work one chunk of the newest version's pass; ``worked`` is False when there is
        nothing to do here (no pass due, or another instance is working it)."""
        version = await self._due_version()
        if version is None:
            return NOTHING
        chunk_size = 1 if self._careful > 0 else self.ctx.settings.lifecycle_pass_chunk
        try:
            chunk = await self._chunk_with_retries(version, chunk_size)
        except Exception as exc:
            if is_transient(exc):
                raise  # the supervisor restarts the job; the chunk was rolled back
            if chunk_size > 1:
                log.warning(
                    "lifecycle pass chunk failed, going on one customer at a time",
                    extra={"lifecycle_version": version, "error": repr(exc)},
                )
                self._careful = chunk_size
                return Chunk(worked=True, version=version)
            chunk = await self._skip_one(version, exc)
        if self._careful > 0:
            self._careful -= 1
        self._after_commit(chunk)
        return chunk

    async def _due_version(self) -> int | None:
        """The newest stored version if its pass is not finished (and set the gauges)."""
        async with self.ctx.sessions() as session:
            row = (await session.execute(_NEWEST)).one()
        version, exists, finished, total, customers = row
        if version is None:
            m.LIFECYCLE_PASS_PENDING.set(0)
            return None
        if finished:
            m.LIFECYCLE_PASS_PENDING.set(0)
            m.LIFECYCLE_PASS_DONE_VERSION.set(version)
            return None
        if exists:
            m.LIFECYCLE_PASS_PENDING.set(max(total - customers, 0))
        return int(version)

    async def _chunk_with_retries(self, version: int, size: int) -> Chunk:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._chunk(version, size)
            except Exception as exc:
                if not retryable(exc) or attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    async def _chunk(self, version: int, size: int) -> Chunk:
        ctx = self.ctx
        async with transaction(ctx.sessions) as session:
            config = await self._config(session, version)
            if config is None:
                return Chunk(worked=True, version=version)  # superseded: start the newer one
            claimed, created = await passes.claim(session, version, now=datetime.now(UTC))
            if claimed is None:
                return NOTHING
            keys = await passes.next_keys(session, after=claimed.cursor, limit=size)
            if not keys:
                done = await passes.finish(session, version, now=datetime.now(UTC))
                return Chunk(worked=True, version=version, finished=done)
            locked = await lock_states(session, keys)  # not from the state cache: see below
            now = datetime.now(UTC)
            fold = Fold(
                config=config,
                now=now,
                states=locked.states,
                links={},
                existing=set(locked.states),
                versions=locked.versions,
            )
            change = LifecycleChanged(lifecycle_version=version)
            customers = sum(fold.reevaluate(key, change) for key in keys)
            written = await write_fold(session, fold, grace=ctx.settings.late_timer_grace)
            progress = await passes.advance(
                session,
                version,
                cursor=keys[-1],
                customers=customers,
                transitions=len(written.transitions),
                now=now,
            )
        # The states are not put in the state cache: a pass reads every customer once, and
        # would push out the ones the consumer is working on. A cached state of a customer
        # written here is of an older row version, so it will not be used.
        return Chunk(
            worked=True,
            version=version,
            customers=customers,
            written=written,
            started=claimed if created else None,
            progress=progress,
        )

    async def _config(self, session: AsyncSession, version: int) -> EngineConfig | None:
        """The configuration to move customers with, whose model is exactly ``version``'s;
        None when a newer model has been stored since (the pass is superseded)."""
        config = await self.ctx.config.get(session)  # checks for changes in this transaction
        if config.lifecycle_version < version:  # a cache behind the database: read it here
            current, model = await lifecycle_repo.current(session)
            if current != version:
                return None
            config = replace(config, lifecycle=model, lifecycle_version=version)
        if config.lifecycle_version > version:
            if version not in self._superseded:
                self._superseded.add(version)
                log.info(
                    "lifecycle pass superseded by a newer model",
                    extra={"lifecycle_version": version, "newer": config.lifecycle_version},
                )
            return None
        return config

    async def _skip_one(self, version: int, error: Exception) -> Chunk:
        """Step over the next customer, who failed alone: logged, counted, left as it was."""
        async with transaction(self.ctx.sessions) as session:
            claimed, _ = await passes.claim(session, version, now=datetime.now(UTC))
            if claimed is None:
                return NOTHING
            keys = await passes.next_keys(session, after=claimed.cursor, limit=1)
            if not keys:
                return Chunk(worked=True, version=version)
            key = keys[0]
            progress = await passes.advance(
                session, version, cursor=key, customers=0, transitions=0, now=datetime.now(UTC)
            )
        log.error(
            "customer could not be re-evaluated under the new lifecycle model; skipped",
            extra={"lifecycle_version": version, "customer_key": key, "error": repr(error)},
        )
        m.LIFECYCLE_PASS_FAILURES.inc()
        return Chunk(worked=True, version=version, progress=progress)

    def _after_commit(self, chunk: Chunk) -> None:
        if chunk.started is not None:
            log.info(
                "lifecycle pass started",
                extra={"lifecycle_version": chunk.version, "customers": chunk.started.total},
            )
        if chunk.customers:
            m.LIFECYCLE_REEVALUATED.inc(chunk.customers)
        if chunk.progress is not None:
            m.LIFECYCLE_PASS_PENDING.set(chunk.progress.pending)
        written = chunk.written
        if written is not None:
            if written.transitions:
                m.LIFECYCLE_PASS_TRANSITIONS.inc(len(written.transitions))
            after_commit(self.ctx, written)
        done = chunk.finished
        if done is not None:
            m.LIFECYCLE_PASS_PENDING.set(0)
            m.LIFECYCLE_PASS_DONE_VERSION.set(done.version)
            log.info(
                "lifecycle pass finished",
                extra={
                    "lifecycle_version": done.version,
                    "customers": done.customers,
                    "transitions": done.transitions,
                    "seconds": round((done.updated_at - done.started_at).total_seconds(), 3),
                },
            )
