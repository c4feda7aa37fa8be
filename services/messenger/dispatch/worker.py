"""The dispatcher: claim due deliveries (short transaction) → send (no transaction open) →
record the outcome (short transaction).

Fairness: each destination has its own concurrency limit and token bucket, and a claim takes
per destination only what those allow, so a slow or failing provider ties up its own slots
only. Shutdown: stop claiming, give back claims not yet sent, let attempts in flight finish
(within the attempt timeout) and record them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from services.messenger.context import MessengerContext
from services.messenger.deliveries import claims
from services.messenger.deliveries.claims import ClaimedDelivery
from services.messenger.deliveries.status import Status, next_state
from services.messenger.delivery.retry import decide, seeded_rand
from services.messenger.destinations import repository as destinations
from services.messenger.destinations.models import Destination
from services.messenger.destinations.secrets import UndecryptableSecret
from services.messenger.dispatch.fairness import claim_caps
from services.messenger.dispatch.plan import Send, Skip, Target, plan
from services.messenger.dispatch.ratelimit import TokenBucket
from services.messenger.dispatch.render import render_into
from services.messenger.observability import metrics
from services.messenger.suppressions import repository as suppressions
from services.messenger.suppressions.rules import subjects_to_check
from services.messenger.templates_store import repository as templates
from services.messenger.webhooks.body import webhook_body
from services.messenger.webhooks.sender import send_signed
from shared.db import transaction
from shared.transient import is_transient

log = logging.getLogger(__name__)

_RECORD_TRIES = 6


class Dispatcher:
    def __init__(self, ctx: MessengerContext) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.inflight: dict[str, int] = defaultdict(int)
        self.buckets: dict[str, TokenBucket] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        #: Claims still waiting for their destination's rate limit (not sent yet).
        self.waiting: dict[asyncio.Task[None], ClaimedDelivery] = {}

    async def run(self, stop: asyncio.Event) -> None:
        backoff = 0.5
        try:
            while not stop.is_set():
                try:
                    more, due_at = await self.cycle()
                    backoff = 0.5
                except Exception as exc:
                    if not is_transient(exc):
                        raise
                    # Database unreachable: attempts in flight go on; claim again later.
                    log.warning("claiming failed, retrying", extra={"error": repr(exc)})
                    await self._sleep(stop, None, timeout=backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                if more and self._free() > 0:
                    continue
                await self._sleep(stop, due_at)
        finally:
            await self.drain()

    def _secret(self, row: Destination) -> str | None:
        try:
            return self.ctx.secrets.open(row.secret_encrypted)
        except UndecryptableSecret:
            return None  # its deliveries fail with the reason (plan)

    def _free(self) -> int:
        return self.settings.delivery_concurrency - len(self.tasks)

    async def cycle(self) -> tuple[bool, datetime | None]:
        """Claim and start what is due. Returns (maybe more due now, next due time)."""
        free = self._free()
        now = datetime.now(UTC)
        if free <= 0:
            return False, None
        limit = min(free, self.settings.claim_batch_size)
        loop_now = asyncio.get_running_loop().time()
        started: list[tuple[ClaimedDelivery, Send]] = []
        unsent: list[Status] = []
        run_ended: list[str] = []
        async with transaction(self.ctx.sessions) as session:
            rows = await destinations.list_all(session)
            targets = {row.id: Target.of(row, secret=self._secret(row)) for row in rows}
            defaults = {row.channel: row.id for row in rows if row.is_default}
            for target in targets.values():
                self._bucket(target)
            caps = claim_caps(
                targets.values(),
                inflight=self.inflight,
                buckets=self.buckets,
                now=loop_now,
                free=free,
            )
            claimed = await claims.claim_due(
                session,
                now=now,
                lease_until=now + timedelta(seconds=self.settings.claim_lease_seconds),
                token=uuid.uuid4(),
                caps=caps,
                default_cap=min(free, self.settings.destination_concurrency),
                limit=limit,
            )
            due_at = None if len(claimed) >= limit else await claims.next_due_at(session, now=now)
            if not claimed:
                return False, due_at
            subjects = [
                s for c in claimed for s in subjects_to_check(c.channel, c.customer_key, c.payload)
            ]
            suppressed = await suppressions.matching(session, subjects)
            sources = await templates.sources(session, {c.template for c in claimed if c.template})
            for c in claimed:
                decision = plan(
                    c, targets=targets, defaults=defaults, suppressed=suppressed, templates=sources
                )
                if isinstance(decision, Skip):
                    await claims.finish_unsent(
                        session,
                        c,
                        status=decision.status,
                        reason=decision.reason,
                        destination_id=decision.destination_id,
                        now=now,
                    )
                    unsent.append(decision.status)
                    if c.run_ended is not None and c.payload is not None:
                        run_ended.append(c.run_ended)
                else:
                    started.append((c, decision))
        for status in unsent:
            metrics.UNSENT.labels(status.value).inc()
        for reason in run_ended:
            metrics.CANCELLED.labels(reason).inc()
        for c, send in started:
            self._start(c, send)
        return len(claimed) >= limit, due_at

    def _bucket(self, target: Target) -> TokenBucket:
        bucket = self.buckets.get(target.id)
        if bucket is None:
            bucket = self.buckets[target.id] = TokenBucket(target.rate_limit_per_second)
        else:
            bucket.set_rate(target.rate_limit_per_second)
        return bucket

    def _start(self, claimed: ClaimedDelivery, send: Send) -> None:
        dest = send.target.id
        self.inflight[dest] += 1
        metrics.INFLIGHT.inc()
        task = asyncio.create_task(self._deliver(claimed, send), name=f"deliver {claimed.id}")
        self.tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.discard(t)
            self.waiting.pop(t, None)
            self.inflight[dest] -= 1
            metrics.INFLIGHT.dec()
            if not t.cancelled() and t.exception() is not None:
                log.error("delivery task failed", exc_info=t.exception())
            self.ctx.wake()  # a slot is free

        task.add_done_callback(done)

    async def _deliver(self, claimed: ClaimedDelivery, send: Send) -> None:
        target = send.target
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        bucket = self._bucket(target)
        wait = bucket.reserve(loop.time())
        if wait > 0:
            self.waiting[task] = claimed
            try:
                await asyncio.sleep(wait)  # the destination's rate limit, not synchronisation
            except asyncio.CancelledError:
                bucket.cancel(loop.time())
                raise
            self.waiting.pop(task, None)
        data = dict(claimed.payload or {})
        if send.template is not None:
            error = await render_into(data, send.template)
            if error is not None:
                await self._record_unsent(claimed, Status.FAILED, error, target.id)
                return
        body = webhook_body(data, created_at=claimed.action_created_at)
        assert target.secret is not None  # plan() sends nothing without one
        report = await send_signed(
            self.ctx.http,
            url=target.url,
            secret=target.secret,
            msg_id=claimed.action_id,
            body=body,
            timeout=self.ctx.policy.timeout.total_seconds(),
            allow_private=self.ctx.allow_private,
            excerpt_bytes=self.settings.response_excerpt_bytes,
            now=datetime.now(UTC),
        )
        ended = datetime.now(UTC)
        decision = decide(
            self.ctx.policy,
            claimed.round_attempts + 1,
            report.result,
            now=ended,
            rand=seeded_rand(claimed.action_id, claimed.attempt_count + 1),
        )
        state = next_state(decision, now=ended)
        metrics.ATTEMPTS.labels(target.id, state.outcome.value).inc()
        metrics.ATTEMPT_SECONDS.labels(target.id).observe(report.latency_ms / 1000.0)
        recorded: claims.Recorded | None = None
        for attempt in range(_RECORD_TRIES):
            try:
                async with transaction(self.ctx.sessions) as session:
                    recorded = await claims.record_attempt(
                        session,
                        claimed,
                        state,
                        destination_id=target.id,
                        started_at=report.started_at,
                        latency_ms=report.latency_ms,
                        status_code=report.status_code,
                        error=report.error,
                        response_body=report.response_excerpt,
                        now=ended,
                    )
                    if state.disable_destination:
                        await destinations.disable(
                            session, target.id, reason=state.error or "410 Gone", now=ended
                        )
                break
            except Exception as exc:
                if not is_transient(exc) or attempt == _RECORD_TRIES - 1:
                    raise  # the lease runs out and the delivery is sent again (at least once)
                await asyncio.sleep(0.5 * 2**attempt)
        if state.disable_destination:
            log.warning("destination disabled by 410 Gone", extra={"destination": target.id})
        if recorded is not None and recorded.run_ended is not None:
            # The cancellation came while this attempt was in flight: not retried.
            metrics.CANCELLED.labels(recorded.run_ended).inc()
            log.info(
                "retry cancelled: the run ended during the attempt",
                extra={"delivery_id": str(claimed.id), "reason": recorded.run_ended},
            )

    async def _record_unsent(
        self, claimed: ClaimedDelivery, status: Status, reason: str, destination_id: str
    ) -> None:
        async with transaction(self.ctx.sessions) as session:
            await claims.finish_unsent(
                session,
                claimed,
                status=status,
                reason=reason,
                destination_id=destination_id,
                now=datetime.now(UTC),
            )
        metrics.UNSENT.labels(status.value).inc()

    async def _sleep(
        self, stop: asyncio.Event, due_at: datetime | None, *, timeout: float | None = None
    ) -> None:
        """Until woken (new work, a free slot), ``due_at``, the poll interval, or stop; with
        ``timeout`` (a backoff), until it passes or stop."""
        if timeout is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await stop.wait()
            return
        wakeup = self.ctx.wakeup
        if wakeup.is_set():
            wakeup.clear()
            return
        timeout = self.settings.dispatch_poll_seconds
        if due_at is not None:
            until_due = (due_at - datetime.now(UTC)).total_seconds()
            if until_due > 0:
                timeout = min(timeout, until_due + 0.005)
        waits = [asyncio.ensure_future(wakeup.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        wakeup.clear()

    async def drain(self) -> None:
        """Give back claims not sent yet; let attempts in flight finish and be recorded."""
        unsent = list(self.waiting.items())
        for task, _ in unsent:
            task.cancel()
        if unsent:
            try:
                async with transaction(self.ctx.sessions) as session:
                    await claims.release(session, [c for _, c in unsent])
            except Exception as exc:  # their leases run out instead
                log.warning("could not release claims", extra={"error": repr(exc)})
        if self.tasks:
            grace = self.ctx.policy.timeout.total_seconds() + 5
            _, pending = await asyncio.wait(set(self.tasks), timeout=grace)
            for task in pending:
                task.cancel()
