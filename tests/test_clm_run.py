"""`clm run` as a user runs it: all three services reach /readyz, and SIGINT leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from clm.runtime import free_port

pytestmark = pytest.mark.slow


def _wait_ready(ports: list[int], proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = set(ports)
    with httpx.Client(timeout=2) as client:
        while pending:
            assert proc.poll() is None, f"clm run exited early with {proc.returncode}"
            assert time.monotonic() < deadline, f"ports {sorted(pending)} not ready in {timeout}s"
            for port in sorted(pending):
                try:
                    if client.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                        pending.discard(port)
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)


def test_clm_run_starts_everything_and_sigint_leaves_no_process(tmp_path: Path) -> None:
    ports = [free_port(), free_port(), free_port(), free_port()]
    env = {
        k: v for k, v in os.environ.items() if k not in ("CLM_DATABASE_URL", "CLM_KAFKA_BOOTSTRAP")
    }
    env.update(
        CLM_DATA_DIR=str(tmp_path / "data"),
        CLM_INGEST_PORT=str(ports[0]),
        CLM_ENGINE_PORT=str(ports[1]),
        CLM_MESSENGER_PORT=str(ports[2]),
        CLM_CONSOLE_PORT=str(ports[3]),
        CLM_KAFKA_PORT=str(free_port()),
    )
    env.pop("CLM_ADMIN_TOKEN", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "clm.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(ports, proc, timeout=120)
        token = (tmp_path / "data" / "admin_token").read_text().strip()
        assert token.startswith("adm_")
        descendants = psutil.Process(proc.pid).children(recursive=True)
        postmaster = (tmp_path / "data" / "postgres" / "postmaster.pid").read_text().split()[0]
        watched = [p.pid for p in descendants] + [int(postmaster)]
        assert len(descendants) >= 5  # three services, the console and the broker
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "admin token" in text and token in text
    assert "ops console" in text and f"http://127.0.0.1:{ports[3]}" in text
    alive = [
        pid
        for pid in watched
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == [], f"processes left behind: {alive}"
