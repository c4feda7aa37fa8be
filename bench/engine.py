"""`make bench`: the trigger engine end to end on a synthetic storefront.

1. Starts embedded PostgreSQL and Kafka (unless CLM_DATABASE_URL / CLM_KAFKA_BOOTSTRAP name
   others), installs the example plays, and produces a seeded storefront history to
   ``clm.events`` (default 50k customers, 500k events; ``--customers-skew`` makes activity
   Pareto-distributed). With ``--long-lived N``, N events per customer are produced and
   folded first by engines that then stop: the measured run starts from long-lived states.
2. Reads that topic back with a bare aiokafka consumer + ``orjson.loads``: the raw rate.
3. Starts the engine as its own process (as in production) and measures the rate at which it
   folds the same events (consume, decode, fold, flush actions, checkpoint), from the first
   folded records to the last: the end-to-end rate, and its ratio to the raw rate; and, on Linux,
   the CPU time per event the engines, the embedded PostgreSQL and the broker used
   meanwhile (what limits the rate on a machine with few cores).
4. With the engine caught up, produces ``Signed Up`` events at a steady rate (the welcome
   play sends at once) and measures event produced -> action published on ``clm.actions``
   (p50/p99): right after the catch-up (while the backlog's last checkpoints are written),
   and again after that (the steady state).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench import cpu
from bench.storefront import Record, Storefront
from clm.runtime import free_port, infrastructure
from services.trigger_engine.core.derive import holdout_bucket
from services.trigger_engine.core.rule_checks import parse_rule
from services.trigger_engine.rules import repository as rules_repo
from services.trigger_engine.rules.examples import load_examples
from shared import topics
from shared.db import create_engine, session_factory, transaction


async def install_examples(database_url: str) -> int:
    """Store the example plays straight into the database (the engine reads them at start)."""
    engine = create_engine(database_url, pool_size=1)
    try:
        async with transaction(session_factory(engine)) as session:
            for body in load_examples():
                await rules_repo.create(session, parse_rule(body), now=datetime.now(UTC))
    finally:
        await engine.dispose()
    return len(load_examples())


async def produce(bootstrap: str, records: list[Record]) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1024 * 1024
    )
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topics.EVENTS, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, expected: int) -> float:
    """Seconds for a bare consumer to read and orjson-decode ``expected`` records."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.EVENTS) or set()
        tps = [TopicPartition(topics.EVENTS, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        started = time.perf_counter()
        seen = 0
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


async def metric(clients: list[httpx.AsyncClient], name: str) -> float:
    """The sum of a Prometheus metric's samples over every engine process."""
    total = 0.0
    for client in clients:
        text = (await client.get("/metrics")).text
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
    return total


FOLDED = 'clm_engine_events_total{outcome="folded"}'
WELCOME = "welcome-series"


async def wait_ready(client: httpx.AsyncClient, proc: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError("the engine exited during start")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise TimeoutError("the engine did not become ready")


async def engine_rate(
    clients: list[httpx.AsyncClient], expected: int, cpu_groups: Mapping[str, cpu.Match]
) -> tuple[float, float, dict[str, float]]:
    """(events/s from the first folded records to the last, seconds to catch up, CPU
    seconds each of ``cpu_groups`` used meanwhile)."""
    first: tuple[float, float, dict[str, float]] | None = None
    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        folded = await metric(clients, FOLDED)
        now = time.perf_counter()
        if first is None and folded > 0:
            first = (now, folded, cpu.snapshot(cpu_groups))
        if folded >= expected and first is not None:
            seconds = now - first[0]
            end = cpu.snapshot(cpu_groups)
            used = {name: end[name] - first[2][name] for name in cpu_groups}
            rate = (folded - first[1]) / seconds if seconds > 0 else float("inf")
            return rate, seconds, used
        # Rendering /metrics costs the engines CPU: poll it a few times a second only.
        await asyncio.sleep(0.25)
    raise TimeoutError("the engine did not catch up")


async def latency(
    bootstrap: str, store: Storefront, *, rate: int, seconds: float, run: int
) -> tuple[list[float], int, int]:
    """Produce Signed Up events at ``rate``/s (new customers: the welcome play sends at once
    unless the customer is in its holdout group); return the produce -> publish latencies
    (s), how many were held out, and how many actions never came."""
    prefix = f"lat{uuid.uuid4().hex[:6]}-"
    sent: dict[str, float] = {}
    # A short fetch wait, as the services' consumers use: the broker does not answer a
    # waiting fetch early, so the default 500 ms would be measured as latency.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    parts = consumer.partitions_for_topic(topics.ACTIONS) or set()
    tps = [TopicPartition(topics.ACTIONS, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    found: list[float] = []
    produced = asyncio.Event()
    all_seen = asyncio.Event()

    async def read() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    data = orjson.loads(record.value).get("data", {})
                    trigger = data.get("context", {}).get("trigger", {})
                    message_id = trigger.get("message_id")
                    if message_id in sent:
                        found.append(record.timestamp / 1000 - sent.pop(message_id))
            if produced.is_set() and not sent:
                all_seen.set()

    welcome_holdout = next(r for r in load_examples() if r["key"] == WELCOME)["holdout_percent"]
    held = 0
    reader = asyncio.create_task(read())
    try:
        total = int(rate * seconds)
        start = time.monotonic()
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            now = datetime.now(UTC)
            number = 10_000_000 * (run + 1) + i
            record = store.record(number, "Signed Up", now, received=now, prefix=prefix)
            if holdout_bucket(WELCOME, record.key.decode()) < welcome_holdout:
                held += 1
            else:
                sent[record.message_id] = time.time()
            await producer.send(topics.EVENTS, record.value, key=record.key)
        produced.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60):
                await all_seen.wait()
        return found, held, len(sent)
    finally:
        reader.cancel()
        await producer.stop()
        await consumer.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def cpu_groups(
    engines: list[asyncio.subprocess.Process], work_dir: Path, bootstrap: str
) -> dict[str, cpu.Match]:
    """The processes whose CPU time the bench reports: the engines, and the embedded
    PostgreSQL (postmaster and backends) and broker when this run started them."""
    if not cpu.available():
        return {}
    pids = {proc.pid for proc in engines}
    groups: dict[str, cpu.Match] = {"engines": lambda pid, ppid, cmdline: pid in pids}
    if not os.environ.get("CLM_DATABASE_URL"):
        postmaster = cpu.find_pid(str(work_dir / "postgres"))
        groups["PostgreSQL"] = cpu.children_of(lambda: postmaster)
    if not os.environ.get("CLM_KAFKA_BOOTSTRAP"):
        listener = f"tcp://{bootstrap} "
        groups["broker"] = lambda pid, ppid, cmdline: listener in cmdline
    return groups


async def start_engines(
    args: argparse.Namespace, database_url: str, bootstrap: str, group: str
) -> list[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]:
    engines: list[tuple[asyncio.subprocess.Process, httpx.AsyncClient]] = []
    for _ in range(args.engines):
        port = free_port()
        env = dict(
            os.environ,
            CLM_DATABASE_URL=database_url,
            CLM_KAFKA_BOOTSTRAP=bootstrap,
            CLM_ADMIN_TOKEN="adm_bench_" + uuid.uuid4().hex,
            CLM_ENGINE_PORT=str(port),
            CLM_MIGRATE_ON_START="false",
            CLM_LOG_LEVEL="WARNING",
            CLM_CONSUMER_GROUP=group,
            CLM_CONSUMER_MAX_RECORDS=str(args.batch),
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.trigger_engine", env=env
        )
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        engines.append((proc, client))
    for proc, client in engines:
        await wait_ready(client, proc)
    return engines


async def stop_engines(engines: list[tuple[asyncio.subprocess.Process, httpx.AsyncClient]]) -> None:
    """SIGTERM: each engine checkpoints its partitions before it exits."""
    for proc, client in engines:
        await client.aclose()
        if proc.returncode is None:
            proc.terminate()
    for proc, _ in engines:
        await proc.wait()


async def warm_up(
    args: argparse.Namespace,
    store: Storefront,
    database_url: str,
    bootstrap: str,
    *,
    now: datetime,
) -> None:
    """Long-lived customers: ``--long-lived`` events per customer, folded (not measured) by
    engines that then stop, so the measured run starts from states with that much history
    (read back from PostgreSQL as the customers come up)."""
    warm = list(store.history(args.customers * args.long_lived, now=now))
    await produce(bootstrap, warm)
    engines = await start_engines(args, database_url, bootstrap, f"bench-{uuid.uuid4().hex[:8]}")
    try:
        clients = [client for _, client in engines]
        await engine_rate(clients, len(warm), {})
    finally:
        await stop_engines(engines)
    print(f"warm-up:           {len(warm):,} events folded first ({args.long_lived} per customer)")


async def bench(
    args: argparse.Namespace, database_url: str, bootstrap: str, work_dir: Path
) -> None:
    rules = await install_examples(database_url)
    store = Storefront(customers=args.customers, seed=args.seed, skew=args.customers_skew)
    now = datetime.now(UTC)
    if args.long_lived:
        await warm_up(args, store, database_url, bootstrap, now=now - timedelta(hours=1))
    records = list(store.history(args.events, now=now))
    produce_s = await produce(bootstrap, records)
    raw_s = await raw_consume(bootstrap, len(records))
    raw_rate = len(records) / raw_s

    group = f"bench-{uuid.uuid4().hex[:8]}"
    engines: list[tuple[asyncio.subprocess.Process, httpx.AsyncClient]] = []
    try:
        engines = await start_engines(args, database_url, bootstrap, group)
        clients = [client for _, client in engines]
        groups = cpu_groups([proc for proc, _ in engines], work_dir, bootstrap)
        rate, catch_up_s, cpu_used = await engine_rate(clients, len(records), groups)
        actions = await metric(clients, "clm_engine_actions_total{")
        transitions = await metric(clients, "clm_engine_stage_transitions_total{")
        merges = await metric(clients, "clm_engine_merges_total ")
        checkpoints = await metric(clients, "clm_engine_checkpoints_total ")
        states = await metric(clients, "clm_engine_checkpoint_states_total ")
        # Right after the catch-up (the last checkpoints of the backlog are being written),
        # then again once those are done: the steady state.
        after = await latency(bootstrap, store, rate=args.rate, seconds=args.seconds, run=0)
        steady = await latency(bootstrap, store, rate=args.rate, seconds=args.seconds, run=1)
    finally:
        await stop_engines(engines)

    shape = f"{args.customers:,} customers, {len(records):,} events, seed {args.seed}"
    if args.customers_skew:
        shape += f", Pareto skew {args.customers_skew}"
    print(f"storefront:        {shape}")
    print(f"rules:             {rules} example plays enabled")
    print(f"produce:           {len(records) / produce_s:,.0f} events/s ({produce_s:.1f} s)")
    print(f"raw consume+orjson:{raw_rate:>10,.0f} events/s ({raw_s:.1f} s)")
    print(
        f"engine end to end: {rate:>10,.0f} events/s ({catch_up_s:.1f} s, {args.engines} "
        f"engine process(es), polls of up to {args.batch})"
    )
    print(f"ratio:             {rate / raw_rate:.1%} of the raw rate")
    if cpu_used:
        folded_during = rate * catch_up_s
        per_event = ", ".join(
            f"{name} {seconds / folded_during * 1e6:,.0f} µs" for name, seconds in cpu_used.items()
        )
        busy = sum(cpu_used.values()) / catch_up_s
        print(f"cpu per event:     {per_event} ({busy:.2f} cores busy, of {os.cpu_count()})")
    print(
        f"during catch-up:   {actions:,.0f} actions, {transitions:,.0f} stage transitions, "
        f"{merges:,.0f} merges"
    )
    print(
        f"checkpoints:       {checkpoints:,.0f}, {states:,.0f} customer states written "
        f"({states / len(records):.2f} per event)"
    )
    for name, (lat, held, lost) in (("after catch-up", after), ("steady state", steady)):
        print(
            f"latency, {name + ':':15} event -> action published "
            f"p50 {percentile(lat, 0.5) * 1000:.0f} ms, p99 {percentile(lat, 0.99) * 1000:.0f} ms "
            f"({len(lat)} actions at {args.rate}/s over {args.seconds:.0f} s, {held} held out"
            f"{f', {lost} MISSING' if lost else ''})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--customers-skew",
        type=float,
        default=0.0,
        help="Pareto (Zipf) exponent of customer activity; 0 = uniform, ~1 = a few hot customers",
    )
    parser.add_argument(
        "--long-lived",
        type=int,
        default=0,
        metavar="N",
        help="fold N events per customer first (not measured): long-lived states",
    )
    parser.add_argument("--batch", type=int, default=2000, help="records per consumer poll")
    parser.add_argument("--engines", type=int, default=2, help="engine processes (one group)")
    parser.add_argument("--rate", type=int, default=100, help="Signed Up/s in the latency run")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="clm-bench-engine-"))
    try:
        with infrastructure(tmp) as (database_url, bootstrap):
            asyncio.run(bench(args, database_url, bootstrap, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
