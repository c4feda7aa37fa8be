"""Long-running background work (consumer loops, relays, timer workers) inside a service.

Each job gets the shared stop event; a job that crashes is logged and restarted with
backoff, so a passing database outage does not leave a service half-alive. At shutdown
the stop event is set and every job is given time to drain and commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter

log = logging.getLogger(__name__)

Job = Callable[[asyncio.Event], Awaitable[None]]

RESTARTS = Counter(
    "clm_background_restarts_total", "Background jobs restarted after a crash", ["job"]
)


class Supervisor:
    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, job: Job, *, max_backoff: float = 30.0) -> None:
        self._tasks[name] = asyncio.create_task(self._supervise(name, job, max_backoff), name=name)

    async def _supervise(self, name: str, job: Job, max_backoff: float) -> None:
        backoff = 0.5
        while not self.stop.is_set():
            try:
                await job(self.stop)
                if self.stop.is_set():
                    return
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except Exception:
                RESTARTS.labels(name).inc()
                log.exception("background job crashed, restarting", extra={"job": name})
                try:
                    async with asyncio.timeout(backoff):
                        await self.stop.wait()
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, max_backoff)

    def alive(self) -> dict[str, bool]:
        return {name: not task.done() for name, task in self._tasks.items()}

    async def shutdown(self, *, timeout: float = 25.0) -> None:
        self.stop.set()
        if not self._tasks:
            return
        done, pending = await asyncio.wait(self._tasks.values(), timeout=timeout)
        for task in pending:
            log.warning(
                "background job did not stop in time, cancelling", extra={"job": task.get_name()}
            )
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        del done


async def every(seconds: float, stop: asyncio.Event, work: Callable[[], Awaitable[None]]) -> None:
    """Run ``work`` now and then every ``seconds`` until ``stop`` is set (a periodic job)."""
    while not stop.is_set():
        await work()
        try:
            async with asyncio.timeout(seconds):
                await stop.wait()
        except TimeoutError:
            pass
