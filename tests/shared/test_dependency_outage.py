"""PostgreSQL or the broker stopped or killed: every service answers 503 with Retry-After
within seconds, never hangs for the outage and never answers 500; a NUL in a path or query
parameter is a 422 everywhere.

The three services run here on a PostgreSQL and a broker of this module's own, so stopping
them (SIGSTOP, SIGKILL) leaves the session's servers alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from clm.runtime import EmbeddedKafka, EmbeddedPostgres, free_port, prepare_all
from services.ingest.app import create_app as ingest_app
from services.ingest.settings import IngestSettings
from services.messenger.app import create_app as messenger_app
from services.messenger.settings import MessengerSettings
from services.trigger_engine.app import create_app as engine_app
from services.trigger_engine.settings import EngineSettings
from shared.kafka.admin import TopicConfig
from tests.support.services import Infra, RunningService, settings_env, start_service

pytestmark = pytest.mark.slow

#: The promise is "a second or two"; the margin is for a loaded test machine.
PROMPT = 4.0


@dataclass
class Stack:
    postgres: EmbeddedPostgres
    kafka: EmbeddedKafka
    ingest: RunningService
    engine: RunningService
    messenger: RunningService
    write_key: str

    def postgres_processes(self) -> list[psutil.Process]:
        assert self.postgres.pid is not None
        postmaster = psutil.Process(self.postgres.pid)
        return [postmaster, *postmaster.children(recursive=True)]

    def kafka_processes(self) -> list[psutil.Process]:
        assert self.kafka.proc is not None
        return [psutil.Process(self.kafka.proc.pid)]


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    work: Path = tmp_path_factory.mktemp("outage")
    postgres = EmbeddedPostgres(work / "postgres", cleanup="delete")
    kafka = EmbeddedKafka(free_port(), log_path=work / "kafka.log")
    running: list[RunningService] = []
    try:
        url = await asyncio.to_thread(postgres.start)
        bootstrap = await asyncio.to_thread(kafka.start)
        await prepare_all(url, bootstrap, TopicConfig(partitions=1))
        infra = Infra(url, bootstrap)
        group = f"outage-{uuid.uuid4().hex[:8]}"
        for app in (
            ingest_app(IngestSettings(**settings_env(infra, storefront_consumer=False))),  # type: ignore[arg-type]
            engine_app(
                EngineSettings(
                    **settings_env(  # type: ignore[arg-type]
                        infra,
                        consumer_group=group,
                        run_consumer=False,
                        run_timers=False,
                        run_relay=False,
                        run_lifecycle_passes=False,
                        run_retention=False,
                    )
                )
            ),
            messenger_app(MessengerSettings(**settings_env(infra, consumer_group=group))),  # type: ignore[arg-type]
        ):
            running.append(await start_service(app))
        async with running[0].admin() as admin:
            created = await admin.post("/v1/write-keys", json={"source": "outage-shop"})
        assert created.status_code == 201, created.text
        yield Stack(postgres, kafka, *running, write_key=created.json()["key"])
    finally:
        for service in reversed(running):
            await service.stop()
        await asyncio.to_thread(kafka.stop)
        await asyncio.to_thread(postgres.stop)


@contextlib.contextmanager
def stopped(processes: list[psutil.Process]) -> Iterator[None]:
    """SIGSTOP the processes, and SIGCONT them whatever happens."""
    for process in processes:
        process.suspend()
    try:
        yield
    finally:
        for process in reversed(processes):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()


def track() -> dict[str, object]:
    return {"userId": "u-1", "event": "Product Viewed", "messageId": str(uuid.uuid4())}


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    path: str
    body: dict[str, object] | None = None


OPS_CALLS = (
    Call("ingest", "GET", "/v1/write-keys"),
    Call("engine", "GET", "/v1/rules"),
    Call("engine", "GET", "/v1/lifecycle"),
    Call("messenger", "GET", "/v1/destinations"),
    Call("messenger", "GET", "/v1/deliveries"),
)


async def _send(stack: Stack, call: Call) -> tuple[httpx.Response, float]:
    service: RunningService = getattr(stack, call.service)
    if call.path.startswith("/v1/track"):
        client = service.client(auth=(stack.write_key, ""))
    else:
        client = service.admin()
    started = time.monotonic()
    async with client:
        response = await client.request(call.method, call.path, json=call.body)
    return response, time.monotonic() - started


async def _all(stack: Stack, calls: tuple[Call, ...]) -> list[tuple[httpx.Response, float]]:
    return await asyncio.gather(*(_send(stack, call) for call in calls))


async def _until_ok(stack: Stack, calls: tuple[Call, ...], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(calls)
    while pending:
        results = await _all(stack, tuple(pending))
        pending = [c for c, (r, _) in zip(pending, results, strict=True) if r.status_code != 200]
        assert time.monotonic() < deadline, f"still failing: {pending}"
        if pending:
            await asyncio.sleep(0.2)


def _assert_prompt_503(
    calls: tuple[Call, ...], results: list[tuple[httpx.Response, float]]
) -> None:
    for call, (response, elapsed) in zip(calls, results, strict=True):
        assert response.status_code == 503, (call, response.status_code, response.text)
        assert response.headers["Retry-After"] == "2", call
        assert response.json()["code"] == "unavailable", call
        assert elapsed < PROMPT, (call, elapsed)


async def test_a_nul_in_a_path_or_query_parameter_is_a_422_on_every_service(
    stack: Stack,
) -> None:
    calls = (
        Call("ingest", "DELETE", "/v1/write-keys/a%00b"),
        Call("ingest", "GET", "/v1/write-keys?source=a%00"),
        Call("engine", "GET", "/v1/customers/user%0042"),
        Call("engine", "GET", "/v1/customers/u-1/timeline?cursor=%00"),
        Call("engine", "GET", "/v1/rules/cart%00"),
        Call("messenger", "GET", "/v1/destinations/dst_%00"),
        Call("messenger", "GET", "/v1/deliveries?customer_id=a%00b"),
        Call("messenger", "GET", "/v1/suppressions?customer_id=%00"),
    )
    for call, (response, _) in zip(calls, await _all(stack, calls), strict=True):
        assert response.status_code == 422, (call, response.text)
        assert "NUL" in response.json()["message"], call


async def test_a_stopped_postgres_is_a_prompt_503_and_service_resumes(stack: Stack) -> None:
    calls = (*OPS_CALLS, Call("ingest", "POST", "/v1/track", track()))
    await _until_ok(stack, calls)
    with stopped(stack.postgres_processes()):
        results = await _all(stack, calls)
    _assert_prompt_503(calls, results)
    await _until_ok(stack, (*OPS_CALLS, Call("ingest", "POST", "/v1/track", track())))


async def test_a_stopped_broker_is_a_prompt_503_on_the_tracking_api_only(stack: Stack) -> None:
    await _until_ok(stack, (Call("ingest", "POST", "/v1/track", track()),))
    with stopped(stack.kafka_processes()):
        tracked = await _all(stack, (Call("ingest", "POST", "/v1/track", track()),))
        # The ops APIs need only PostgreSQL: they keep answering.
        ops = await _all(stack, OPS_CALLS)
    _assert_prompt_503((Call("ingest", "POST", "/v1/track"),), tracked)
    assert [r.status_code for r, _ in ops] == [200] * len(OPS_CALLS)
    await _until_ok(stack, (Call("ingest", "POST", "/v1/track", track()),))


async def test_a_killed_postgres_is_a_503_not_a_500_until_it_is_back(stack: Stack) -> None:
    calls = (*OPS_CALLS, Call("ingest", "POST", "/v1/track", track()))
    await _until_ok(stack, calls)
    for process in stack.postgres_processes():
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    gone = time.monotonic() + 30
    while stack.postgres.is_alive():
        assert time.monotonic() < gone, "the postmaster survived SIGKILL"
        await asyncio.sleep(0.05)
    _assert_prompt_503(calls, await _all(stack, calls))
    await asyncio.to_thread(stack.postgres.restart)
    await _until_ok(stack, (*OPS_CALLS, Call("ingest", "POST", "/v1/track", track())))
