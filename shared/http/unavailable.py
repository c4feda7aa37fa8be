"""Answer ``503`` with ``Retry-After`` within a second or two when PostgreSQL or Kafka stops
answering, instead of leaving the request hanging for the whole outage.

A server that is down refuses connections, and the error handlers turn that into a 503 at
once (``shared.errors``). A server that is stopped, or cut off by the network, accepts the
connection and never answers: a request waiting on it would hang until the outage ends.
Statement timeouts alone cannot tell a slow query from a dead server without cutting real
long queries short, so this middleware watches the requests instead: one still unanswered
after ``timeout`` seconds has the dependencies checked (a fresh connection, the same
timeout; one check shared by every waiting request). If one does not answer, the request
is abandoned (cancelled, its late output dropped) and answered 503; if all answer, it goes
on and is checked again after another ``timeout``. A request whose response has started is
never touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import error_body
from shared.http.responses import JSONBytesResponse

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]

#: Never abandoned: they report on the dependencies themselves.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class DependencyCheck:
    """The named checks, run together at most once per ``timeout`` however many requests
    ask; the answer is the names that failed."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._running: asyncio.Task[list[str]] | None = None
        self._last: tuple[float, list[str]] | None = None

    async def failures(self, checks: Mapping[str, Check]) -> list[str]:
        loop = asyncio.get_running_loop()
        if self._last is not None and loop.time() - self._last[0] < self.timeout:
            return self._last[1]
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._run(checks))
        return await asyncio.shield(self._running)

    async def _run(self, checks: Mapping[str, Check]) -> list[str]:
        results = await asyncio.gather(*(self._one(check) for check in checks.values()))
        failed = [name for name, ok in zip(checks, results, strict=True) if not ok]
        self._last = (asyncio.get_running_loop().time(), failed)
        return failed

    async def _one(self, check: Check) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                await check()
        except Exception:
            return False
        return True


class UnavailableGuard:
    """ASGI middleware; ``dependencies`` name the app's readiness checks
    (``app.state.readiness``) its requests wait on."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        dependencies: tuple[str, ...],
        timeout: float,
        retry_after: int,
    ) -> None:
        self.app = app
        self.dependencies = dependencies
        self.timeout = timeout
        self.retry_after = retry_after
        self.check = DependencyCheck(timeout)
        self._abandoned: set[asyncio.Task[None]] = set()

    def _checks(self, scope: Scope) -> dict[str, Check]:
        readiness: dict[str, Check] = getattr(scope["app"].state, "readiness", {})
        return {name: readiness[name] for name in self.dependencies if name in readiness}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        state = {"started": False, "abandoned": False}

        async def guarded_send(message: Message) -> None:
            if state["abandoned"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        task: asyncio.Task[None] = asyncio.ensure_future(self.app(scope, receive, guarded_send))
        while True:
            try:
                finished = await _finished_within(task, self.timeout)
            except asyncio.CancelledError:
                task.cancel()
                raise
            if finished or state["started"]:
                await task
                return
            checks = self._checks(scope)
            failed = await self.check.failures(checks) if checks else []
            if failed and not task.done() and not state["started"]:
                break
        state["abandoned"] = True
        self._abandon(task)
        log.warning(
            "request abandoned: a dependency does not answer",
            extra={"path": scope["path"], "unavailable": failed},
        )
        names = " and ".join(_NAMES.get(name, name) for name in failed)
        verb = "is" if len(failed) == 1 else "are"
        response = JSONBytesResponse(
            error_body("unavailable", f"{names} {verb} not answering; retry later"),
            status_code=503,
            headers={"Retry-After": str(self.retry_after)},
        )
        await response(scope, receive, send)

    def _abandon(self, task: asyncio.Task[None]) -> None:
        """Cancel ``task`` without waiting: its cleanup may itself wait on the stopped
        server. It is kept referenced until it ends, and whatever it raised is read."""
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(_forget(self._abandoned))


_NAMES: dict[str, str] = {"postgres": "PostgreSQL", "kafka": "Kafka"}


async def _finished_within(task: asyncio.Task[None], timeout: float) -> bool:
    """Wait until ``task`` is done or ``timeout`` passed; True if done. A timer and a done
    callback rather than ``asyncio.wait``: this runs for every request."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    task.add_done_callback(wake)
    timer = loop.call_later(timeout, wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


def _forget(tasks: set[asyncio.Task[None]]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled():
            task.exception()

    return done
