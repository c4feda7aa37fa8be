"""`clm run` as a user runs it: all three services reach /readyz; a killed service, broker or
PostgreSQL is started again; the user's settings hold; Ctrl-C (SIGINT to the group) or a
SIGTERM to the process alone stops everything and leaves nothing behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from aiokafka import AIOKafkaConsumer

from clm.runtime import free_port
from shared import topics

pytestmark = pytest.mark.slow


@dataclass
class ClmRun:
    proc: subprocess.Popen[bytes]
    data: Path
    log: Path
    ports: dict[str, int]
    kafka_port: int

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        return psutil.Process(self.proc.pid).children()

    def service(self, module: str) -> psutil.Process | None:
        """The running process of ``module`` (none while it is being restarted)."""
        for child in self.children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and module in child.cmdline():
                    return child
            except psutil.Error:
                continue
        return None

    def postmaster(self) -> int:
        return int((self.data / "postgres" / "postmaster.pid").read_text().split()[0])

    def token(self) -> str:
        return (self.data / "admin_token").read_text().strip()


def poll(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout}s"
        time.sleep(0.2)


def all_ready(run: ClmRun) -> bool:
    """Every service answers /readyz with 200, and clm run says it is ready (until then it
    gives up on a service that exits, rather than restarting it)."""
    assert run.proc.poll() is None, f"clm run exited with {run.proc.returncode}"
    if "clm is ready" not in run.output():
        return False
    with httpx.Client(timeout=2) as client:
        for port in run.ports.values():
            try:
                if client.get(f"http://127.0.0.1:{port}/readyz").status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


@pytest.fixture
def start_clm(tmp_path: Path) -> Iterator[Callable[..., ClmRun]]:
    """``clm run`` in a session of its own (as on a terminal), embedded servers, free ports."""
    started: list[ClmRun] = []

    def start(**settings: str) -> ClmRun:
        ports = {
            "ingest": free_port(),
            "engine": free_port(),
            "messenger": free_port(),
            "console": free_port(),
        }
        kafka_port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CLM_DATABASE_URL", "CLM_KAFKA_BOOTSTRAP", "CLM_ADMIN_TOKEN")
        }
        env.update(
            CLM_DATA_DIR=str(tmp_path / "data"),
            CLM_INGEST_PORT=str(ports["ingest"]),
            CLM_ENGINE_PORT=str(ports["engine"]),
            CLM_MESSENGER_PORT=str(ports["messenger"]),
            CLM_CONSOLE_PORT=str(ports["console"]),
            CLM_KAFKA_PORT=str(kafka_port),
            **settings,
        )
        log = tmp_path / "clm-run.log"
        with log.open("wb") as out:  # a file, not a pipe: nobody has to drain it meanwhile
            proc = subprocess.Popen(
                [sys.executable, "-m", "clm.cli", "run"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        run = ClmRun(proc, tmp_path / "data", log, ports, kafka_port)
        started.append(run)
        return run

    yield start
    for run in started:
        if run.proc.poll() is None:
            for child in run.children():
                child.kill()
            run.proc.kill()
            run.proc.wait()


def stop_and_check_nothing_is_left(run: ClmRun, send: Callable[[], None]) -> str:
    watched = [p.pid for p in psutil.Process(run.proc.pid).children(recursive=True)]
    watched.append(run.postmaster())
    assert len(watched) >= 6  # three services, the console, the broker, PostgreSQL
    send()
    run.proc.wait(timeout=90)
    text = run.output()
    assert run.proc.returncode == 0, text[-3000:]
    alive = [
        pid
        for pid in watched
        if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    ]
    assert alive == [], f"processes left behind: {alive}"
    return text


def test_clm_run_starts_everything_and_ctrl_c_leaves_no_process(
    start_clm: Callable[..., ClmRun],
) -> None:
    run = start_clm()
    poll(lambda: all_ready(run), "all services ready")
    token = run.token()
    assert token.startswith("adm_")
    assert (run.data / "secret_key").stat().st_mode & 0o077 == 0  # generated, owner only
    # Ctrl-C on a terminal: SIGINT to the whole foreground process group.
    text = stop_and_check_nothing_is_left(run, lambda: os.killpg(run.proc.pid, signal.SIGINT))
    assert "admin token" in text and token in text
    assert "ops console" in text and f"http://127.0.0.1:{run.ports['console']}" in text


async def _partitions(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        return len(consumer.partitions_for_topic(topic) or ())
    finally:
        await consumer.stop()


def test_clm_run_restarts_what_dies_and_keeps_the_users_settings(
    start_clm: Callable[..., ClmRun],
) -> None:
    run = start_clm(CLM_ALLOW_PRIVATE_DESTINATIONS="false", CLM_KAFKA_TOPIC_PARTITIONS="3")
    poll(lambda: all_ready(run), "all services ready")
    bootstrap = f"127.0.0.1:{run.kafka_port}"

    # CLM_ALLOW_PRIVATE_DESTINATIONS=false holds although clm run is dev mode.
    with httpx.Client(
        base_url=f"http://127.0.0.1:{run.ports['messenger']}",
        headers={"Authorization": f"Bearer {run.token()}"},
        timeout=10,
    ) as client:
        refused = client.post(
            "/v1/destinations", json={"channel": "email", "url": "http://127.0.0.1:9/hooks"}
        )
    assert refused.status_code == 422, refused.text

    # A crashed service is started again, and the log says so.
    messenger = run.service("services.messenger")
    assert messenger is not None
    messenger.kill()

    def restarted() -> bool:
        now = run.service("services.messenger")
        return now is not None and now.pid != messenger.pid

    poll(restarted, "messenger restart")
    poll(lambda: all_ready(run), "ready after the messenger restart")
    assert "service messenger exited with code -9; restarting it" in run.output()

    # The broker: started again, the topics recreated with the configured partitions.
    [broker] = [p for p in run.children() if p.name().startswith("tansu")]
    broker.kill()
    poll(lambda: "embedded Kafka broker restarted" in run.output(), "broker restart")
    poll(lambda: all_ready(run), "ready after the broker restart")
    for topic in topics.ALL:
        assert asyncio.run(_partitions(bootstrap, topic)) == 3, topic

    # PostgreSQL: the postmaster killed, started again on the same data.
    postmaster = run.postmaster()
    os.kill(postmaster, signal.SIGKILL)
    poll(lambda: "embedded PostgreSQL restarted" in run.output(), "PostgreSQL restart")
    assert run.postmaster() != postmaster
    poll(lambda: all_ready(run), "ready after the PostgreSQL restart")

    # A SIGTERM to the process alone (a process manager, kill <pid>) stops everything.
    stop_and_check_nothing_is_left(run, lambda: run.proc.send_signal(signal.SIGTERM))


class _Shop:
    """The public APIs of a running ``clm run``: a write key, a rule that sends at once on
    ``Signed Up`` (to a destination that refuses connections: the deliveries stay), and the
    counts of what the engine and the messenger hold."""

    def __init__(self, run: ClmRun, tag: str) -> None:
        self.run = run
        self.tag = tag
        headers = {"Authorization": f"Bearer {run.token()}"}
        self.clients = {
            name: httpx.Client(
                base_url=f"http://127.0.0.1:{run.ports[name]}", headers=headers, timeout=10
            )
            for name in ("ingest", "engine", "messenger")
        }

    def set_up(self) -> None:
        r = self.clients["messenger"].post(
            "/v1/destinations", json={"channel": "webhook", "url": "http://127.0.0.1:9/hooks"}
        )
        assert r.status_code == 201, r.text
        r = self.clients["engine"].post(
            "/v1/rules",
            json={
                "key": f"welcome-{self.tag}",
                "name": "Welcome",
                "enabled": True,
                "trigger": {"type": "event", "event": "Signed Up"},
                "steps": [
                    {"send": {"channel": "webhook", "template": "w", "destination": r.json()["id"]}}
                ],
            },
        )
        assert r.status_code == 201, r.text
        r = self.clients["ingest"].post("/v1/write-keys", json={"source": f"shop-{self.tag}"})
        assert r.status_code == 201, r.text
        self.write_key = r.json()["key"]

    def sign_up(self, customers: list[str]) -> None:
        """Answered 200 each: what must not be lost from here on."""
        batch = [{"type": "track", "userId": c, "event": "Signed Up"} for c in customers]
        with httpx.Client(timeout=10) as client:
            r = client.post(
                f"http://127.0.0.1:{self.run.ports['ingest']}/v1/batch",
                json={"batch": batch},
                auth=(self.write_key, ""),
            )
        assert r.status_code == 200 and "rejected" not in r.json(), r.text

    def known(self, customers: list[str]) -> int:
        """How many of ``customers`` the engine has a profile of."""
        engine = self.clients["engine"]
        return sum(engine.get(f"/v1/customers/{c}").status_code == 200 for c in customers)

    def delivered(self, customers: list[str]) -> int:
        """How many of ``customers`` have a delivery in the messenger."""
        messenger = self.clients["messenger"]
        return sum(
            len(messenger.get("/v1/deliveries", params={"customer_id": c}).json()["items"]) == 1
            for c in customers
        )

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


def _pause(run: ClmRun, module: str) -> psutil.Process:
    process = run.service(module)
    assert process is not None
    process.suspend()
    return process


def test_what_the_embedded_broker_held_survives_its_restart_and_a_restart_of_clm_run(
    start_clm: Callable[..., ClmRun],
) -> None:
    settings = {"CLM_DRAIN_TIMEOUT": "1", "CLM_ALLOW_PRIVATE_DESTINATIONS": "true"}
    run = start_clm(**settings)
    poll(lambda: all_ready(run), "all services ready")
    shop = _Shop(run, uuid.uuid4().hex[:8])
    shop.set_up()
    published = [f"a-{shop.tag}-{i}" for i in range(40)]
    unconsumed = [f"b-{shop.tag}-{i}" for i in range(40)]

    # Actions published but not taken in: the messenger is paused.
    _pause(run, "services.messenger")
    shop.sign_up(published)
    poll(lambda: shop.known(published) == len(published), "the engine consumed batch a")
    # Events accepted but not consumed: the engine is paused too.
    _pause(run, "services.trigger_engine")
    shop.sign_up(unconsumed)

    [broker] = [p for p in run.children() if p.name().startswith("tansu")]
    broker.kill()
    poll(lambda: "embedded Kafka broker restarted" in run.output(), "broker restart")
    poll(lambda: all_ready(run), "ready after the broker restart")
    assert "published again what the broker had lost" in run.output()
    everyone = published + unconsumed
    poll(lambda: shop.known(everyone) == len(everyone), "the engine consumed both batches")
    poll(lambda: shop.delivered(everyone) == len(everyone), "one delivery per customer")

    # A backlog at an orderly stop: the engine is paused, the drain gives up after 1 s, and
    # the next start publishes the backlog again.
    backlog = [f"c-{shop.tag}-{i}" for i in range(40)]
    engine = _pause(run, "services.trigger_engine")
    shop.sign_up(backlog)
    shop.close()
    run.proc.send_signal(signal.SIGTERM)
    poll(lambda: "stopping with a backlog" in run.output(), "the drain gave up")
    engine.resume()  # so that it hears its SIGTERM
    assert run.proc.wait(timeout=90) == 0, run.output()[-3000:]

    again = start_clm(**settings)
    poll(lambda: all_ready(again), "all services ready after the restart")
    shop = _Shop(again, shop.tag)
    everyone += backlog
    poll(lambda: shop.known(everyone) == len(everyone), "the engine consumed the backlog")
    poll(lambda: shop.delivered(everyone) == len(everyone), "one delivery per customer")
    shop.close()
    stop_and_check_nothing_is_left(again, lambda: again.proc.send_signal(signal.SIGTERM))
