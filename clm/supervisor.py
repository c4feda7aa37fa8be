"""What ``clm run`` starts, keeps running, and stops in order.

- **Services** (ingest, trigger engine, messenger) are child processes, each in a session of
  its own: a Ctrl-C on the terminal (SIGINT to the whole foreground group) reaches only
  ``clm run``, which then stops them in order. One that exits after the stack was ready is
  started again after a backoff (0.5 s doubling to 30 s, back to 0.5 s once it stayed up a
  minute), and the log says so. If ``clm run`` itself dies, they get SIGTERM (Linux
  ``PR_SET_PDEATHSIG``) and stop on their own.
- **PostgreSQL** (embedded) is started again when its postmaster is gone; its data is on
  disk, so nothing is lost. A stopped one (SIGSTOP) is left alone: it comes back by itself.
- **The broker** (embedded Tansu) is started again when it exited, and the contract's topics
  are created again with the configured partitions. Tansu keeps everything in memory: what it
  held is lost with it (the log says so).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from clm.runtime import SERVICES, EmbeddedKafka, EmbeddedPostgres, ServiceSpec, reap_orphans
from shared.kafka.admin import TopicConfig, ensure_topics

log = logging.getLogger("clm.supervisor")

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
#: A child up this long is healthy again: its next crash restarts it after FIRST_DELAY.
STABLE_AFTER = 60.0
STOP_TIMEOUT = 30.0


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
        if now < self.restart_at:
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.data_dir = data_dir
        self.kafka_port = kafka_port
        self.topic_config = topic_config
        self.clock = clock
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        self.children: dict[str, Child] = {}
        self.watched: list[Watched] = []

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
        kafka = self.kafka = EmbeddedKafka(
            self.kafka_port, log_path=self.data_dir / "logs" / "kafka.log"
        )
        bootstrap = kafka.start()
        log.info("embedded Kafka broker started", extra={"bootstrap": bootstrap})

        def restart() -> None:
            kafka.stop()  # closes its log file
            asyncio.run(ensure_topics(kafka.start(), self.topic_config))

        self._watch(
            "embedded Kafka broker",
            down=lambda: _exit_status(kafka.proc),
            restart=restart,
            note=f" with empty topics of {self.topic_config.partitions} partitions: it keeps "
            "data in memory only, so what it held is lost",
        )
        return bootstrap

    def start_services(self, envs: Mapping[str, Mapping[str, str]]) -> None:
        for spec in SERVICES:
            child = self.children[spec.name] = Child(spec, envs[spec.name])
            child.start()
            self._watch(f"service {spec.name}", down=child.down, restart=child.start)

    def _watch(
        self,
        name: str,
        *,
        down: Callable[[], str | None],
        restart: Callable[[], object],
        note: str = "",
    ) -> None:
        self.watched.append(Watched(name, down, restart, note, started_at=self.clock()))

    def exited_service(self) -> tuple[str, int] | None:
        """A service that exited (during start: nothing is restarted yet), with its code."""
        for name, child in self.children.items():
            code = child.exited()
            if code is not None:
                return name, code
        return None

    # --- supervise --------------------------------------------------------------------------

    def supervise(self) -> None:
        """One look at everything: restart what is down, once its backoff has passed."""
        reap_orphans(self._own_children())
        for watched in self.watched:
            watched.look(self.clock)

    def _own_children(self) -> set[int]:
        procs = [c.proc for c in self.children.values()]
        if self.kafka is not None:
            procs.append(self.kafka.proc)
        return {p.pid for p in procs if p is not None}

    # --- stop -------------------------------------------------------------------------------

    def stop(self, *, force: Callable[[], bool] = lambda: False) -> None:
        """Services first (SIGTERM, in reverse start order; they drain and commit), then the
        broker, then PostgreSQL. ``force()`` turning true (a second Ctrl-C) kills what is
        still running instead of waiting."""
        running = [c for c in reversed(self.children.values()) if c.exited() is None]
        for child in running:
            log.info("stopping service", extra={"child": child.spec.name})
            assert child.proc is not None
            child.proc.send_signal(signal.SIGTERM)
        deadline = self.clock() + STOP_TIMEOUT
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
        self.children.clear()
        self.watched.clear()
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
