"""``clm run`` as a user runs it, as a black box for harnesses: started as a subprocess on
its own data directory and free loopback ports, watched only through its HTTP endpoints and
its process tree, stopped with SIGTERM.

Everything here acts only on the processes of the ``clm run`` it started (its descendants,
including the PostgreSQL postmaster it adopted as a subreaper), never on others.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from clm.runtime import free_port

#: The services a harness may kill, by the module their process runs (``-m <module>``).
SERVICE_MODULES: dict[str, str] = {
    "ingest": "services.ingest",
    "trigger_engine": "services.trigger_engine",
    "messenger": "services.messenger",
    "console": "services.console",
}

#: Settings the caller's environment must not carry into an isolated run.
_NOT_INHERITED = ("CLM_DATABASE_URL", "CLM_KAFKA_BOOTSTRAP", "CLM_ADMIN_TOKEN")

POLL = 0.2


def _die_with_parent() -> None:
    """In ``clm run`` before exec: SIGTERM when the harness that started it dies, so that
    ``clm run`` stops its stack in order even if the harness is killed."""
    if sys.platform == "linux":
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class ClmRunError(RuntimeError):
    """``clm run`` did not start, or exited while it should run."""


@dataclass
class ClmRun:
    proc: subprocess.Popen[bytes]
    work_dir: Path
    ports: dict[str, int]
    kafka_port: int
    token: str
    #: processes stopped with SIGSTOP and not continued yet (continued on every exit path)
    stopped: list[psutil.Process] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "clm-run.log"

    @classmethod
    def start(cls, work_dir: Path, settings: Mapping[str, str] | None = None) -> ClmRun:
        """Start ``clm run`` in ``work_dir`` (its data directory and log are there, and it
        reads no ``.env`` but its own), every port free, a fresh admin token. ``settings``
        are extra ``CLM_*`` variables; they win over the caller's environment."""
        ports = {name: free_port() for name in SERVICE_MODULES}
        kafka_port = free_port()
        token = "adm_chaos_" + secrets.token_urlsafe(24)
        env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
        env.update(
            CLM_DATA_DIR=str(work_dir / "data"),
            CLM_INGEST_PORT=str(ports["ingest"]),
            CLM_ENGINE_PORT=str(ports["trigger_engine"]),
            CLM_MESSENGER_PORT=str(ports["messenger"]),
            CLM_CONSOLE_PORT=str(ports["console"]),
            CLM_KAFKA_PORT=str(kafka_port),
            CLM_ADMIN_TOKEN=token,
            CLM_LOG_FORMAT="json",
        )
        env.update(settings or {})
        work_dir.mkdir(parents=True, exist_ok=True)
        with (work_dir / "clm-run.log").open("wb") as out:  # a file: nobody has to drain it
            proc = subprocess.Popen(
                [sys.executable, "-m", "clm.cli", "run"],
                cwd=work_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the harness, which stops us
                preexec_fn=_die_with_parent,
            )
        return cls(proc, work_dir, ports, kafka_port, token)

    # --- looking ----------------------------------------------------------------------------

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def running(self) -> bool:
        return self.proc.poll() is None

    def descendants(self) -> list[psutil.Process]:
        try:
            found: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return found

    def service(self, name: str) -> psutil.Process | None:
        """The running process of service ``name`` (none while it is being restarted)."""
        module = SERVICE_MODULES[name]
        for child in self.descendants():
            with contextlib.suppress(psutil.Error):
                cmdline = child.cmdline()
                if child.status() != psutil.STATUS_ZOMBIE and module in cmdline[1:3]:
                    return child
        return None

    def broker(self) -> psutil.Process | None:
        """The embedded broker (Tansu), if it runs."""
        for child in self.descendants():
            with contextlib.suppress(psutil.Error):
                if child.name().startswith("tansu") and child.status() != psutil.STATUS_ZOMBIE:
                    return child
        return None

    def postmaster(self) -> psutil.Process | None:
        """The embedded PostgreSQL's postmaster, if it runs and is ours (``clm run`` adopts
        it as a subreaper, so it is one of its descendants)."""
        try:
            pid = int((self.data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        for child in self.descendants():
            if child.pid == pid:
                return child
        return None

    async def ready(self, client: httpx.AsyncClient, services: list[str] | None = None) -> bool:
        """Every (or each named) service answers ``/readyz`` with 200."""
        for name in services or list(SERVICE_MODULES):
            try:
                if (await client.get(f"{self.url(name)}/readyz")).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True

    async def wait_ready(self, timeout: float) -> None:
        """Until ``clm run`` says it is ready and every service answers ``/readyz``."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if not self.running():
                    raise ClmRunError(
                        f"clm run exited with {self.proc.returncode} during start:\n{self.tail()}"
                    )
                if "clm is ready" in self.output() and await self.ready(client):
                    return
                if time.monotonic() > deadline:
                    raise ClmRunError(f"clm run was not ready in {timeout:.0f}s:\n{self.tail()}")
                await asyncio.sleep(POLL)

    # --- faults -----------------------------------------------------------------------------

    def pause_postgres(self) -> int:
        """SIGSTOP the whole embedded PostgreSQL server (postmaster first, so that it forks
        no new backend, then every process it started). Returns how many were stopped."""
        postmaster = self.postmaster()
        if postmaster is None:
            raise ClmRunError("no embedded PostgreSQL postmaster among clm run's processes")
        postmaster.suspend()
        self.stopped.append(postmaster)
        for child in postmaster.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.suspend()
                self.stopped.append(child)
        return len(self.stopped)

    def resume_stopped(self) -> None:
        """SIGCONT whatever :meth:`pause_postgres` stopped (its children first)."""
        while self.stopped:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.stopped.pop().resume()

    # --- stopping ---------------------------------------------------------------------------

    async def stop(self, timeout: float = 120.0) -> int | None:
        """SIGTERM ``clm run`` and wait for it (it stops its children in order); whatever of
        its process tree is still there afterwards (or at the deadline) is killed."""
        self.resume_stopped()
        tree = self.descendants()
        postmaster = self.postmaster()
        if postmaster is not None:
            with contextlib.suppress(psutil.Error):
                tree += postmaster.children(recursive=True)
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        if not await _poll(lambda: not self.running(), timeout):
            self.proc.kill()
        code = self.proc.wait()
        # Its children stop with it; give them a moment before treating them as left behind.
        await _poll(lambda: not any(_alive(p) for p in tree), 10.0)
        for process in tree:
            if _alive(process):
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        return code


async def _poll(check: Callable[[], bool], timeout: float) -> bool:
    """Whether ``check()`` turned true within ``timeout`` seconds (looked at every POLL)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(POLL)


def _alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
