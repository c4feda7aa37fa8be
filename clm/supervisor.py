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
class Child:
    """A supervised service process."""

    spec: ServiceSpec
    env: Mapping[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff: Backoff = field(default_factory=Backoff)

    def start(self, now: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.spec.package],
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only clm run, which stops us in order
            preexec_fn=_die_with_parent,
        )
        self.started_at = now
        self.restart_at = None

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()


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
        self._postgres_backoff = Backoff()
        self._postgres_retry_at: float | None = None
        self._kafka_backoff = Backoff()
        self._kafka_retry_at: float | None = None
        self._kafka_started_at = 0.0
        self._postgres_started_at = 0.0

    # --- start ------------------------------------------------------------------------------

    def start_postgres(self) -> str:
        self.postgres = EmbeddedPostgres(self.data_dir.resolve() / "postgres")
        url = self.postgres.start()
        self._postgres_started_at = self.clock()
        log.info("embedded PostgreSQL started", extra={"data": str(self.postgres.data_dir)})
        return url

    def start_kafka(self) -> str:
        self.kafka = EmbeddedKafka(self.kafka_port, log_path=self.data_dir / "logs" / "kafka.log")
        bootstrap = self.kafka.start()
        self._kafka_started_at = self.clock()
        log.info("embedded Kafka broker started", extra={"bootstrap": bootstrap})
        return bootstrap

    def start_services(self, envs: Mapping[str, Mapping[str, str]]) -> None:
        for spec in SERVICES:
            child = Child(spec, envs[spec.name])
            child.start(self.clock())
            self.children[spec.name] = child

    def exited_service(self) -> tuple[str, int] | None:
        """A service that exited (during start: nothing is restarted yet), with its code."""
        for name, child in self.children.items():
            code = child.exited()
            if code is not None:
                return name, code
        return None

    # --- supervise --------------------------------------------------------------------------

    def supervise(self) -> None:
        """One look at everything: restart what died, once its backoff has passed."""
        now = self.clock()
        reap_orphans(self._own_children())
        self._supervise_postgres(now)
        self._supervise_kafka(now)
        for child in self.children.values():
            self._supervise_service(child, now)

    def _supervise_service(self, child: Child, now: float) -> None:
        code = child.exited()
        if code is None:
            return
        if child.restart_at is None:
            delay = child.backoff.next_delay(uptime=now - child.started_at)
            child.restart_at = now + delay
            log.error(
                "service exited; restarting it",
                extra={
                    "child": child.spec.name,
                    "code": code,
                    "in_seconds": delay,
                    "restart": child.backoff.restarts,
                },
            )
        elif now >= child.restart_at:
            child.start(now)
            log.warning(
                "service restarted",
                extra={"child": child.spec.name, "restart": child.backoff.restarts},
            )

    def _supervise_postgres(self, now: float) -> None:
        if self.postgres is None or self.postgres.is_alive():
            return
        if self._postgres_retry_at is None:
            delay = self._postgres_backoff.next_delay(uptime=now - self._postgres_started_at)
            self._postgres_retry_at = now + delay
            log.error("embedded PostgreSQL is gone; restarting it", extra={"in_seconds": delay})
            return
        if now < self._postgres_retry_at:
            return
        try:
            self.postgres.restart()
        except Exception as exc:  # the server log says why; try again later
            delay = self._postgres_backoff.next_delay(uptime=0)
            self._postgres_retry_at = self.clock() + delay
            log.error(
                "embedded PostgreSQL did not start; trying again",
                extra={"error": repr(exc), "in_seconds": delay},
            )
            return
        self._postgres_retry_at = None
        self._postgres_started_at = self.clock()
        log.warning("embedded PostgreSQL restarted (its data is kept)")

    def _supervise_kafka(self, now: float) -> None:
        if self.kafka is None or self.kafka.proc is None or self.kafka.proc.poll() is None:
            return
        if self._kafka_retry_at is None:
            delay = self._kafka_backoff.next_delay(uptime=now - self._kafka_started_at)
            self._kafka_retry_at = now + delay
            log.error(
                "embedded Kafka broker exited; restarting it",
                extra={"code": self.kafka.proc.returncode, "in_seconds": delay},
            )
            return
        if now < self._kafka_retry_at:
            return
        try:
            self.kafka.stop()  # closes its log file
            bootstrap = self.kafka.start()
            asyncio.run(ensure_topics(bootstrap, self.topic_config))
        except Exception as exc:
            delay = self._kafka_backoff.next_delay(uptime=0)
            self._kafka_retry_at = self.clock() + delay
            log.error(
                "embedded Kafka broker did not start; trying again",
                extra={"error": repr(exc), "in_seconds": delay},
            )
            return
        self._kafka_retry_at = None
        self._kafka_started_at = self.clock()
        log.warning(
            "embedded Kafka broker restarted with empty topics: it keeps data in memory only, "
            "so what it held is lost",
            extra={"partitions": self.topic_config.partitions},
        )

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
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
