"""`make bench-ingest`: Tracking API throughput, measured end to end.

Starts embedded PostgreSQL and Kafka (unless CLM_DATABASE_URL / CLM_KAFKA_BOOTSTRAP point
elsewhere) and the ingest service as its own process, as in production; posts a fixed
number of events in batches of 100 through ``/v1/batch`` from concurrent clients; prints
events/s accepted (all 200s back) and events/s durable on ``clm.events`` (all read back).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from clm.runtime import free_port, infrastructure
from shared import topics

EVENTS = ("Product Viewed", "Product Viewed", "Product Viewed", "Product Added", "Order Completed")


def make_batch(rng: random.Random, size: int, customers: int) -> bytes:
    batch = []
    for _ in range(size):
        event = rng.choice(EVENTS)
        props: dict[str, object] = {"product_id": f"p-{rng.randrange(500)}", "price": 19.9}
        if event == "Order Completed":
            props = {"order_id": uuid.uuid4().hex, "total": 59.7, "currency": "EUR"}
        batch.append(
            {
                "type": "track",
                "userId": f"bench-{rng.randrange(customers)}",
                "event": event,
                "messageId": uuid.uuid4().hex,
                "properties": props,
                "context": {"library": {"name": "bench"}},
            }
        )
    return orjson.dumps({"batch": batch})


async def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("ingest exited during start")
            try:
                if (await client.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError("ingest did not become ready")


async def count_on_topic(bootstrap: str, source: str, expected: int, timeout: float) -> float:
    """Read clm.events until ``expected`` events of ``source`` arrived; return the time."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topics.EVENTS) or set()
        tps = [TopicPartition(topics.EVENTS, p) for p in parts]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        needle = f'"source":"{source}"'.encode()
        seen = 0
        deadline = time.monotonic() + timeout
        while seen < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {seen}/{expected} events on {topics.EVENTS}")
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batch.values():
                seen += sum(1 for r in records if r.value and needle in r.value)
        return time.perf_counter()
    finally:
        await consumer.stop()


async def bench(args: argparse.Namespace, url: str, bootstrap: str, token: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as admin:
        source = f"bench-{uuid.uuid4().hex[:8]}"
        r = await admin.post(
            "/v1/write-keys", json={"source": source}, headers={"Authorization": f"Bearer {token}"}
        )
        r.raise_for_status()
        key = r.json()["key"]
    rng = random.Random(args.seed)
    batches = [make_batch(rng, 100, args.customers) for _ in range(args.events // 100)]
    total = len(batches) * 100
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    retries = 0

    async def worker() -> None:
        nonlocal retries
        async with httpx.AsyncClient(
            base_url=url, timeout=30, auth=(key, ""), headers={"content-type": "application/json"}
        ) as client:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    resp = await client.post("/v1/batch", content=body)
                    if resp.status_code == 200:
                        break
                    if resp.status_code in (429, 503):
                        retries += 1
                        await asyncio.sleep(float(resp.headers.get("retry-after", "1")))
                        continue
                    raise RuntimeError(f"unexpected {resp.status_code}: {resp.text}")

    started = time.perf_counter()
    reader = asyncio.create_task(count_on_topic(bootstrap, source, total, timeout=600))
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    accepted_at = time.perf_counter()
    durable_at = await reader
    accepted_s = accepted_at - started
    durable_s = durable_at - started
    print(f"events:            {total} in batches of 100, {args.concurrency} concurrent clients")
    print(f"accepted (200):    {total / accepted_s:,.0f} events/s ({accepted_s:.2f} s)")
    print(f"durable on topic:  {total / durable_s:,.0f} events/s ({durable_s:.2f} s, read back)")
    print(f"429/503 retries:   {retries}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="clm-bench-"))
    token = "adm_bench_" + uuid.uuid4().hex
    try:
        with infrastructure(tmp) as (database_url, bootstrap):
            port = free_port()
            env = dict(
                os.environ,
                CLM_DATABASE_URL=database_url,
                CLM_KAFKA_BOOTSTRAP=bootstrap,
                CLM_ADMIN_TOKEN=token,
                CLM_INGEST_PORT=str(port),
                CLM_MIGRATE_ON_START="false",
                CLM_LOG_LEVEL="WARNING",
            )
            proc = subprocess.Popen([sys.executable, "-m", "services.ingest"], env=env)
            try:
                url = f"http://127.0.0.1:{port}"
                asyncio.run(wait_ready(url, proc))
                asyncio.run(bench(args, url, bootstrap, token))
            finally:
                proc.terminate()
                proc.wait(30)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
