"""The durable timer worker: fires released timers through the core, exactly once.

1. Claim (own short transaction): ``UPDATE … WHERE timer_id IN (SELECT … WHERE release_at <=
   watermark AND due_at <= now … FOR UPDATE SKIP LOCKED)`` sets ``claimed_by``/
   ``claimed_until``. The watermark is the lowest of the clm.events partitions' (see
   ``partitions/watermark.py``): a timer never fires while an event that was in the log
   before its due time is still unconsumed. Workers never wait on each other, and a claim
   whose worker died expires with its lease.
2. Fire (one transaction per round): lock the customers (key order, like every other
   writer), re-read the claimed timers that are still pending and still ours, run ``step``
   with ``TimerFired`` for each in due order, write the state and effects and delete the
   fired rows. An exit event committed first deleted its timer, so it does not fire.

The core never fires a timer before its ``due_at`` (``now`` is taken after the claim). A
round that fails for a reason other than a transient outage is retried timer by timer; a
timer that still fails alone is parked for an hour (logged, counted) so that it cannot
stall the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final

from services.trigger_engine.context import EngineContext
from services.trigger_engine.core.inputs import TimerFired
from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.processing.committed import after_commit
from services.trigger_engine.processing.fold import Fold
from services.trigger_engine.processing.loader import lock_states
from services.trigger_engine.processing.retry import MAX_ATTEMPTS, retryable
from services.trigger_engine.processing.writer import write_fold
from services.trigger_engine.timers import repository
from services.trigger_engine.wakeup import wait_for_work
from shared.db import transaction
from shared.kafka.consumer import is_transient

log = logging.getLogger(__name__)

PARK_FOR: Final = timedelta(hours=1)


class TimerWorker:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.ctx.settings
        while not stop.is_set():
            claimed = await self.fire_due()
            if claimed < settings.timer_batch:
                await wait_for_work(self.ctx.timer_wake, stop, timeout=settings.timer_poll_seconds)

    async def fire_due(self) -> int:
        """One round: claim due timers and fire them; returns how many were claimed."""
        settings = self.ctx.settings
        async with transaction(self.ctx.sessions) as session:
            claimed = await repository.claim(
                session,
                me=settings.instance_id,
                topic=settings.events_topic,
                now=datetime.now(UTC),
                lease=timedelta(seconds=settings.timer_lease_seconds),
                limit=settings.timer_batch,
            )
        if not claimed:
            return 0
        try:
            await self._fire(claimed)
        except Exception as exc:
            if is_transient(exc):
                raise  # the job restarts; the lease hands the claims out again
            log.warning("timer round failed, firing one by one", extra={"error": repr(exc)})
            for one in claimed:
                await self._fire_alone(one)
        return len(claimed)

    async def _fire_alone(self, claimed: tuple[str, str]) -> None:
        try:
            await self._fire([claimed])
        except Exception as exc:
            if is_transient(exc):
                raise
            log.exception("timer failed; parked", extra={"timer_id": claimed[0]})
            m.TIMERS_PARKED.inc()
            async with transaction(self.ctx.sessions) as session:
                await repository.park(
                    session, claimed[0], until=datetime.now(UTC) + PARK_FOR, reason=repr(exc)
                )

    async def _fire(self, claimed: Sequence[tuple[str, str]]) -> None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await self._fire_once(claimed)
                return
            except Exception as exc:
                if not retryable(exc) or attempt == MAX_ATTEMPTS:
                    raise

    async def _fire_once(self, claimed: Sequence[tuple[str, str]]) -> None:
        ctx = self.ctx
        async with transaction(ctx.sessions) as session:
            locked = await lock_states(session, {key for _, key in claimed}, ctx.states)
            config = await ctx.config.get(session)  # under the locks, as in processing.batch
            states = locked.states
            timers = await repository.still_mine(
                session, [t for t, _ in claimed], me=ctx.settings.instance_id
            )
            now = datetime.now(UTC)
            fold = Fold(
                config=config,
                now=now,
                states=states,
                links={},
                existing=set(states),
                versions=locked.versions,
            )
            for timer in timers:
                fired = TimerFired(
                    timer_id=timer.timer_id,
                    kind=timer.kind,
                    run_id=timer.run_id,
                    due_at=timer.due_at,
                )
                fold.apply_timer(timer.customer_key, fired)
            written = await write_fold(
                session,
                fold,
                grace=ctx.settings.late_timer_grace,
                fired_timers=[t.timer_id for t in timers],
            )
        ctx.states.keep(written.states)
        for timer in timers:
            m.TIMERS_FIRED.labels(timer.kind).inc()
            m.TIMER_LATENESS.labels(timer.kind).observe((now - timer.due_at).total_seconds())
        after_commit(ctx, written)
