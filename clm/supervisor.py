"""What ``clm run`` starts, keeps running, and stops in order.

- **Services** (ingest, trigger engine, messenger) are child processes, each in a session of
  its own: a Ctrl-C on the terminal (SIGINT to the whole foreground group) reaches only
  ``clm run``, which then stops them in order. One that exits after the stack was ready is
  started again after a backoff (0.5 s doubling to 30 s, back to 0.5 s once it stayed up a
  minute), and the log says so. If ``clm run`` itself dies, they get SIGTERM (Linux
  ``PR_SET_PDEATHSIG``) and stop on their own.
- **PostgreSQL** (embedded) is started again when its postmaster is gone; its data is on
  disk, so nothing is lost. A stopped one (SIGSTOP) is left alone: it comes back by itself.
- **The broker** (embedded Tansu) keeps everything in memory, so it starts empty: at start,
  and when it died, the services that use it are stopped first, then the broker is started,
  the topics are created with the configured partitions and what it held that was not
  consumed yet is published again from PostgreSQL (``clm.recovery``), and only then are the
  services started. The journal of accepted events is pruned every minute.
- **An orderly stop drains**: ingest stops first (no new events), then the supervisor waits
  (up to ``CLM_DRAIN_TIMEOUT``) until the engine has consumed every journalled event and the
  messenger has taken in every action, before it stops the rest and the broker. What a
  timeout leaves is published again at the next start.

Nothing here sleeps for synchronisation: the loop wakes every ``tick`` to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import asyncpg

from clm import recovery
from clm.runtime import SERVICES, EmbeddedKafka, EmbeddedPostgres, ServiceSpec, reap_orphans
from services.trigger_engine.stream import handoff
from shared.kafka.admin import TopicConfig

log = logging.getLogger("clm.supervisor")

T = TypeVar("T")

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
#: A child up this long is healthy again: its next crash restarts it after FIRST_DELAY.
STABLE_AFTER = 60.0
STOP_TIMEOUT = 30.0
#: The services that use the broker: stopped while it is started again.
BROKER_CLIENTS = ("ingest", "trigger_engine", "messenger")
#: How long a service stopped for a broker restart gets before it is killed (it cannot reach
#: the broker to finish what it was sending; nothing is lost by killing it).
BROKER_STOP_TIMEOUT = 3.0
#: Seconds between two prunings of the event journal.
PRUNE_EVERY = 60.0


@dataclass
class Backoff:
    """Restart delays: FIRST_DELAY, doubling to MAX_DELAY; reset once stable. Pure."""

    delay: float = FIRST_DELAY
    restarts: int = 0

    def next_delay(self, *, uptime: float) -> float:
        """The wait before the next start of something that ran for ``uptime`` seconds."""
        if uptime >= STABLE_AFTER:
            self.delay = FIRST_DELAY
        current = self.delay
        self.delay = min(self.delay * 2, MAX_DELAY)
        self.restarts += 1
        return current


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM when the process that started it dies."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


@dataclass
class Watched:
    """Something the supervisor starts again when it is down, after a backoff."""

    name: str
    #: Why it is down ("exited with code -9"), or None while it runs.
    down: Callable[[], str | None]
    #: Start it again; may raise, and is then tried again after the next delay.
    restart: Callable[[], object]
    #: What the log adds once it was restarted.
    note: str = ""
    #: While true it is not started again (its broker is being refilled).
    blocked: Callable[[], bool] = lambda: False
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)

    def look(self, clock: Callable[[], float]) -> None:
        now = clock()
        why = self.down()
        if why is None:
            return
        if self.restart_at is None:
            delay = self.backoff.next_delay(uptime=now - self.started_at)
            self.restart_at = now + delay
            log.error(
                f"{self.name} {why}; restarting it",
                extra={"child": self.name, "in_seconds": delay, "restart": self.backoff.restarts},
            )
            return
        if now < self.restart_at or self.blocked():
            return
        try:
            self.restart()
        except Exception as exc:  # the server's own log says more
            delay = self.backoff.next_delay(uptime=0)
            self.restart_at = clock() + delay
            log.error(
                f"{self.name} did not start; trying again",
                extra={"child": self.name, "error": repr(exc), "in_seconds": delay},
            )
            return
        self.restart_at = None
        self.started_at = clock()
        log.warning(
            f"{self.name} restarted{self.note}",
            extra={"child": self.name, "restart": self.backoff.restarts},
        )


def _exit_status(proc: subprocess.Popen[bytes] | None) -> str | None:
    code = None if proc is None else proc.poll()
    return None if code is None else f"exited with code {code}"


@dataclass
class Child:
    """A service process."""

    spec: ServiceSpec
    env: Mapping[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.spec.package],
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only clm run, which stops us in order
            preexec_fn=_die_with_parent,
        )

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def down(self) -> str | None:
        return _exit_status(self.proc)


class Stack:
    """The embedded servers (when no external ones are configured) and the services."""

    def __init__(
        self,
        *,
        data_dir: Path,
        kafka_port: int,
        topic_config: TopicConfig,
        drain_timeout: float = 30.0,
        handoff_topic: str = handoff.TOPIC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        self.kafka_port = kafka_port
        self.topic_config = topic_config
        self.drain_timeout = drain_timeout
        #: the engine's internal topic (``CLM_HANDOFF_TOPIC``), refilled with the others
        self.handoff_topic = handoff_topic
        self.clock = clock
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        #: the database, once known (embedded or not)
        self.database_url: str | None = None
        self.children: dict[str, Child] = {}
        self.watched: dict[str, Watched] = {}
        #: the broker was started again and is not refilled yet
        self.refilling = False
        self.pruned_at = clock()

    # --- start ------------------------------------------------------------------------------

    def start_postgres(self) -> str:
        postgres = self.postgres = EmbeddedPostgres(self.data_dir.resolve() / "postgres")
        url = postgres.start()
        log.info("embedded PostgreSQL started", extra={"data": str(postgres.data_dir)})
        self._watch(
            "embedded PostgreSQL",
            down=lambda: None if postgres.is_alive() else "is gone",
            restart=postgres.restart,
            note=" (its data is kept)",
        )
        return url

    def start_kafka(self) -> str:
        """Start the embedded broker; :meth:`recover` must run before the services start."""
        kafka = self.kafka = EmbeddedKafka(
            self.kafka_port, log_path=self.data_dir / "logs" / "kafka.log"
        )
        bootstrap = kafka.start()
        log.info("embedded Kafka broker started", extra={"bootstrap": bootstrap})
        self._watch(
            "embedded Kafka broker",
            down=lambda: _exit_status(kafka.proc),
            restart=self._restart_kafka,
            note=f" with topics of {self.topic_config.partitions} partitions, and what it had "
            "not delivered yet was published again from PostgreSQL",
        )
        return bootstrap

    def recover(self) -> None:
        """The embedded broker has just started, empty: refill it (``clm.recovery``)."""
        assert self.kafka is not None and self.database_url is not None
        asyncio.run(
            recovery.recover(
                self.database_url,
                self.kafka.bootstrap,
                self.topic_config,
                handoff_topic=self.handoff_topic,
            )
        )

    def _restart_kafka(self) -> None:
        """Its clients stopped first, so that nothing is produced or consumed until what the
        broker lost is back, in order; then they start again."""
        kafka = self.kafka
        assert kafka is not None
        clients = [self.children[name] for name in BROKER_CLIENTS if name in self.children]
        self.refilling = True  # until done: no client is started again (see start_services)
        self._stop_children(clients, timeout=BROKER_STOP_TIMEOUT)
        kafka.stop()  # closes its log file
        kafka.start()
        self.recover()
        self.refilling = False
        for child in clients:
            child.start()
            watched = self.watched[f"service {child.spec.name}"]
            watched.restart_at = None
            watched.started_at = self.clock()

    def start_services(self, envs: Mapping[str, Mapping[str, str]]) -> None:
        for spec in SERVICES:
            child = self.children[spec.name] = Child(spec, envs[spec.name])
            child.start()
            self._watch(
                f"service {spec.name}",
                down=child.down,
                restart=child.start,
                blocked=(lambda: self.refilling) if spec.name in BROKER_CLIENTS else None,
            )

    def _watch(
        self,
        name: str,
        *,
        down: Callable[[], str | None],
        restart: Callable[[], object],
        note: str = "",
        blocked: Callable[[], bool] | None = None,
    ) -> None:
        watched = Watched(name, down, restart, note, started_at=self.clock())
        if blocked is not None:
            watched.blocked = blocked
        self.watched[name] = watched

    def exited_service(self) -> tuple[str, int] | None:
        """A service that exited (during start: nothing is restarted yet), with its code."""
        for name, child in self.children.items():
            code = child.exited()
            if code is not None:
                return name, code
        return None

    # --- supervise --------------------------------------------------------------------------

    def supervise(self) -> None:
        """One look at everything: restart what is down, once its backoff has passed; prune
        the event journal now and then."""
        reap_orphans(self._own_children())
        for watched in list(self.watched.values()):
            watched.look(self.clock)
        if self.kafka is not None and self.clock() >= self.pruned_at + PRUNE_EVERY:
            self.pruned_at = self.clock()
            try:
                asyncio.run(self._on_database(recovery.prune))
            except (OSError, asyncpg.PostgresError) as exc:  # (TimeoutError too) next time
                log.warning("could not prune the event journal", extra={"error": repr(exc)})

    async def _on_database(self, call: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        assert self.database_url is not None
        # Bounded both ways: a stopped PostgreSQL must not hold the supervisor's loop.
        connection = await asyncpg.connect(self.database_url, timeout=5, command_timeout=10)
        try:
            return await call(connection)
        finally:
            await connection.close()

    def _own_children(self) -> set[int]:
        procs = [c.proc for c in self.children.values()]
        if self.kafka is not None:
            procs.append(self.kafka.proc)
        return {p.pid for p in procs if p is not None}

    # --- stop -------------------------------------------------------------------------------

    def stop(self, *, force: Callable[[], bool] = lambda: False) -> None:
        """Services first (SIGTERM; they drain and commit): ingest, then, on the embedded
        broker, a wait until its backlog is consumed (:meth:`_drain`), then the others in
        reverse start order; then the broker, then PostgreSQL. ``force()`` turning true (a
        second Ctrl-C) kills what is still running instead of waiting."""
        self.watched.clear()
        ingest = self.children.get("ingest")
        if ingest is not None and self.kafka is not None and ingest.exited() is None:
            self._stop_children([ingest], timeout=STOP_TIMEOUT, force=force)
            self._drain(force)
        self._stop_children(
            list(reversed(self.children.values())), timeout=STOP_TIMEOUT, force=force
        )
        self.children.clear()
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None

    def _drain(self, force: Callable[[], bool]) -> None:
        """Wait until the engine has consumed every journalled event and the messenger has
        taken in every action (polling PostgreSQL), for at most ``drain_timeout``."""
        deadline = self.clock() + self.drain_timeout
        left: recovery.Backlog | None = None
        while not force():
            try:
                left = asyncio.run(self._on_database(recovery.backlog))
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("cannot see the backlog; not waiting", extra={"error": repr(exc)})
                return
            if left.empty:
                log.info("drained: the broker holds nothing that was not consumed")
                return
            if self.clock() >= deadline:
                break
            time.sleep(0.2)  # the poll interval within the deadline, not synchronisation
        if left is not None:
            log.warning(
                "stopping with a backlog: it is published again at the next start",
                extra={"events": left.events, "handoffs": left.handoffs, "actions": left.actions},
            )

    def _stop_children(
        self,
        children: list[Child],
        *,
        timeout: float,
        force: Callable[[], bool] = lambda: False,
    ) -> None:
        """SIGTERM to each, then wait (killing what outlives ``timeout`` or ``force()``)."""
        running = [c for c in children if c.exited() is None]
        for child in running:
            log.info("stopping service", extra={"child": child.spec.name})
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = self.clock() + timeout
        for child in running:
            assert child.proc is not None
            while child.proc.poll() is None and self.clock() < deadline and not force():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.proc.wait(0.2)
            if child.proc.poll() is None:
                log.warning(
                    "service did not stop in time, killing", extra={"child": child.spec.name}
                )
                child.proc.kill()
                child.proc.wait(5)
