"""The chaos run's faults: when (a seeded schedule) and how (SIGKILLs of the services and
the broker, a SIGSTOP/SIGCONT of PostgreSQL, a receiver outage), acting only on the
processes of the ``clm run`` the harness started."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
import psutil

from bench.clmrun import ClmRun, ClmRunError
from bench.webhook_sink import WebhookSink

#: The services killed in turn.
KILLED = ("trigger_engine", "messenger", "ingest")
#: The least time between two faults.
FAULT_GAP = 1.0
POLL = 0.2


def log(event: str, **fields: object) -> None:
    """One JSON line of progress on stderr."""
    line = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **fields}
    sys.stderr.write(orjson.dumps(line).decode() + "\n")
    sys.stderr.flush()


@dataclass(frozen=True)
class Fault:
    #: seconds after the workload's start
    at: float
    kind: Literal["kill", "broker", "pg_pause", "outage"]
    service: str | None = None


def schedule(
    *,
    kills: int,
    broker_restart: bool,
    pg_pause: bool,
    receiver_outage: bool,
    until: float,
    seed: int,
) -> list[Fault]:
    """The faults from 1 s to ``until`` seconds after the workload's start (seeded jitter
    within even slots): ``kills`` kills of the engine, messenger and ingest in turn, and the
    broker restart, the PostgreSQL pause and the sink outage at seeded slots among them."""
    rng = random.Random(seed + 1)
    kinds: list[Fault] = [Fault(0, "kill", KILLED[i % len(KILLED)]) for i in range(kills)]
    extras: list[Fault] = []
    if broker_restart:
        extras.append(Fault(0, "broker"))
    if pg_pause:
        extras.append(Fault(0, "pg_pause"))
    if receiver_outage:
        extras.append(Fault(0, "outage"))
    for extra in extras:
        kinds.insert(rng.randrange(len(kinds) + 1), extra)
    start, end = 1.0, until
    slot = (end - start) / max(len(kinds), 1)
    return [
        Fault(start + (i + 0.5 + rng.uniform(-0.25, 0.25)) * slot, f.kind, f.service)
        for i, f in enumerate(kinds)
    ]


class Faults:
    """Does the faults of a :func:`schedule` to a running ``clm run`` and the sink."""

    def __init__(
        self, clm: ClmRun, sink: WebhookSink, *, pg_pause: float, receiver_outage: float
    ) -> None:
        self.clm = clm
        self.sink = sink
        self.pg_pause = pg_pause
        self.receiver_outage = receiver_outage
        self.kills: Counter[str] = Counter({name: 0 for name in KILLED})
        self.done: list[str] = []
        self.errors: list[str] = []
        self.last_at = 0.0

    async def run(self, faults: list[Fault], started: float) -> None:
        timed: list[asyncio.Task[None]] = []
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                for fault in faults:
                    # At its time, and apart from the previous one (a kill may have waited
                    # for its service to be ready again).
                    at = max(started + fault.at, self.last_at + FAULT_GAP)
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    try:
                        if fault.kind == "kill":
                            assert fault.service is not None
                            await self._kill(client, fault.service)
                        elif fault.kind == "broker":
                            await self._restart_broker()
                        elif fault.kind == "pg_pause":
                            timed.append(asyncio.create_task(self._pause_postgres()))
                        else:
                            timed.append(asyncio.create_task(self._outage()))
                    except (psutil.Error, ClmRunError) as exc:
                        self.errors.append(f"{fault.kind} {fault.service or ''}: {exc!r}")
                        log("fault_error", fault=fault.kind, error=repr(exc))
                for result in await asyncio.gather(*timed, return_exceptions=True):
                    if isinstance(result, Exception):
                        self.errors.append(repr(result))
        finally:
            for task in timed:
                task.cancel()
            self.clm.resume_stopped()
            self.sink.outage(False)
            self.last_at = time.monotonic()

    async def _until(self, what: str, check: Any, timeout: float = 120.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await check():
                return True
            await asyncio.sleep(POLL)
        self.errors.append(f"{what} did not happen in {timeout:.0f}s")
        log("fault_error", what=what)
        return False

    async def _kill(self, client: httpx.AsyncClient, service: str) -> None:
        """SIGKILL ``service`` once it runs and is ready (again)."""

        async def ready() -> bool:
            return self.clm.service(service) is not None and await self.clm.ready(client, [service])

        if not await self._until(f"{service} ready before its kill", ready):
            return
        process = self.clm.service(service)
        if process is None:
            return
        process.kill()
        self.kills[service] += 1
        self.done.append(f"kill {service}")
        self.last_at = time.monotonic()
        log("kill", service=service, pid=process.pid, n=self.kills[service])

    async def _restart_broker(self) -> None:
        broker = self.clm.broker()
        if broker is None:
            self.errors.append("no broker process to kill")
            return
        broker.kill()
        self.last_at = time.monotonic()
        log("broker_killed", pid=broker.pid)

        async def back() -> bool:
            now = self.clm.broker()
            return now is not None and now.pid != broker.pid

        if await self._until("broker restart", back):
            self.done.append("broker restart")

    async def _pause_postgres(self) -> None:
        stopped = self.clm.pause_postgres()
        log("postgres_paused", processes=stopped, seconds=self.pg_pause)
        try:
            await asyncio.sleep(self.pg_pause)
        finally:
            self.clm.resume_stopped()
        self.last_at = time.monotonic()
        self.done.append(f"PostgreSQL paused {self.pg_pause:g} s")
        log("postgres_continued")

    async def _outage(self) -> None:
        self.sink.outage(True)
        log("receiver_outage", seconds=self.receiver_outage)
        try:
            await asyncio.sleep(self.receiver_outage)
        finally:
            self.sink.outage(False)
        self.last_at = time.monotonic()
        self.done.append(f"receiver outage {self.receiver_outage:g} s")
        log("receiver_back")
