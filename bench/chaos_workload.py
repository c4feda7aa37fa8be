"""The chaos run's workload: customers' events over the Tracking API at their times, every
request retried until it gets a 200, each customer's order sent only after its add was
acknowledged (one client queue per customer keeps order)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson

from bench.chaos_oracle import BUY_AFTER, Customer
from bench.clmrun import ClmRunError

#: The engine releases a timer that was already due when its trigger arrived this long
#: after the trigger's arrival (CLM_LATE_TIMER_GRACE_SECONDS).
LATE_TIMER_GRACE = 30.0
BATCH_CUSTOMERS = 50
SENDERS = 4


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Outgoing:
    customer: Customer
    kind: Literal["add", "buy"]
    messages: tuple[dict[str, Any], ...]


class HarnessError(RuntimeError):
    """The harness itself is wrong (a request clm refuses as malformed)."""


class Workload:
    """The customers' events over ``POST /v1/batch``, each request retried until a 200."""

    def __init__(self, people: list[Customer], *, run: str, wait: float) -> None:
        self.people = people
        self.run = run
        self.wait = wait
        self.epoch = 0.0  # wall-clock start; event times are epoch + add_at
        self.add_acked: dict[str, float] = {}
        self.buy_acked: dict[str, float] = {}
        self.requests = 0
        self.retries = 0
        self.rejected = 0
        self._buys: list[tuple[float, int]] = []  # (when to send, index) once the add is acked
        self._index = {c.id: i for i, c in enumerate(people)}

    @property
    def buyers(self) -> int:
        return sum(1 for c in self.people if c.buys)

    def finished(self) -> bool:
        return len(self.add_acked) == len(self.people) and len(self.buy_acked) == self.buyers

    def late_buyers(self) -> set[str]:
        """Buyers whose order was acknowledged only once their reminder was due."""
        return {
            c.id
            for c in self.people
            if c.buys and self.buy_acked.get(c.id, float("inf")) >= self.add_time(c) + self.wait
        }

    def add_time(self, customer: Customer) -> float:
        return self.epoch + customer.add_at

    def last_due(self) -> float:
        """When the last reminder is due (wall clock), given when the adds arrived."""
        due = 0.0
        for c in self.people:
            at = self.add_time(c) + self.wait
            acked = self.add_acked.get(c.id, at)
            due = max(due, at if acked < at else acked + LATE_TIMER_GRACE)
        return due

    def _add(self, c: Customer) -> Outgoing:
        at = iso(self.add_time(c))
        return Outgoing(
            c,
            "add",
            (
                {
                    "type": "identify",
                    "userId": c.id,
                    "traits": {"email": f"{c.id}@example.com"},
                    "timestamp": at,
                    "messageId": f"{self.run}:{c.id}:identify",
                },
                {
                    "type": "track",
                    "userId": c.id,
                    "event": "Product Added",
                    "properties": {"product_id": "sku-1", "price": 25.0, "quantity": 1},
                    "timestamp": at,
                    "messageId": f"{self.run}:{c.id}:add",
                },
            ),
        )

    def _buy(self, c: Customer) -> Outgoing:
        return Outgoing(
            c,
            "buy",
            (
                {
                    "type": "track",
                    "userId": c.id,
                    "event": "Order Completed",
                    "properties": {
                        "order_id": f"order-{c.id}",
                        "total": 25.0,
                        "currency": "EUR",
                        "products": [{"product_id": "sku-1", "price": 25.0, "quantity": 1}],
                    },
                    "timestamp": iso(self.add_time(c) + BUY_AFTER),
                    "messageId": f"{self.run}:{c.id}:buy",
                },
            ),
        )

    async def play(self, client: httpx.AsyncClient, *, timeout: float) -> None:
        """Send every customer's events at their times; returns once all got a 200."""
        queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        senders = [asyncio.create_task(self._sender(client, queue)) for _ in range(SENDERS)]
        self.epoch = time.time()
        try:
            next_add = 0
            deadline = self.epoch + timeout
            while not self.finished():
                if time.time() > deadline:
                    raise ClmRunError(f"ingest did not acknowledge the workload in {timeout:.0f}s")
                for sender in senders:
                    if sender.done():
                        sender.result()  # a harness error ends the run
                now = time.time()
                while next_add < len(self.people) and (self.add_time(self.people[next_add]) <= now):
                    queue.put_nowait(self._add(self.people[next_add]))
                    next_add += 1
                while self._buys and self._buys[0][0] <= now:
                    queue.put_nowait(self._buy(self.people[heapq.heappop(self._buys)[1]]))
                await asyncio.sleep(0.02)  # the workload's clock tick
        finally:
            for sender in senders:
                sender.cancel()
            await asyncio.gather(*senders, return_exceptions=True)

    async def _sender(self, client: httpx.AsyncClient, queue: asyncio.Queue[Outgoing]) -> None:
        while True:
            items = [await queue.get()]
            while len(items) < BATCH_CUSTOMERS and not queue.empty():
                items.append(queue.get_nowait())
            await self._send(client, items)
            acked = time.time()
            for item in items:
                if item.kind == "buy":
                    self.buy_acked[item.customer.id] = acked
                    continue
                self.add_acked[item.customer.id] = acked
                if item.customer.buys:
                    send_at = max(self.add_time(item.customer) + BUY_AFTER, acked)
                    heapq.heappush(self._buys, (send_at, self._index[item.customer.id]))

    async def _send(self, client: httpx.AsyncClient, items: list[Outgoing]) -> None:
        batch = [m for item in items for m in item.messages]
        delay = 0.1
        while True:
            self.requests += 1
            body = orjson.dumps({"batch": batch, "sentAt": iso(time.time())})
            pause = delay
            try:
                r = await client.post(
                    "/v1/batch", content=body, headers={"content-type": "application/json"}
                )
                if r.status_code == 200:
                    self.rejected += len(r.json().get("rejected") or [])
                    return
                if r.status_code < 500 and r.status_code not in (408, 429):
                    raise HarnessError(f"ingest refused a batch: {r.status_code} {r.text}")
                with contextlib.suppress(ValueError):
                    pause = float(r.headers.get("retry-after", delay))
            except httpx.HTTPError:
                pass  # ingest is down or restarting: the client's job is to try again
            self.retries += 1
            await asyncio.sleep(min(pause, 2.0))
            delay = min(delay * 2, 2.0)
