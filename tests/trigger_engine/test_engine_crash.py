"""Engines killed mid-checkpoint, again and again, under load: nothing lost, nothing doubled.

Two engine processes share a topic of their own (and a database of their own, so that they
share nothing with the session's engine). While a storefront's events are produced, one of
them is SIGKILLed every fraction of a second (checkpoints run every 100 ms, so most kills
land in or around one) and started again; the group hands its partitions over each time.
In the end:

- every customer's stored state equals an offline replay of its events through the core;
- the actions on clm.actions are exactly the replay's (by id): none lost, none new. A
  replayed batch may publish an action a second time under the same id (the messenger drops
  the copy): that is counted, never a different id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from clm.runtime import free_port
from services.trigger_engine.core.effects import EmitAction
from services.trigger_engine.core.fold import step_many
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.rule_checks import parse_rule
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState, decode_state, encode_state
from services.trigger_engine.rules import repository as rules_repo
from services.trigger_engine.stream import store
from shared import topics
from shared.db import create_engine, session_factory, transaction
from shared.envelope import Event, EventV1, decode_action_topic, decode_plain_event
from shared.kafka.admin import TopicConfig, ensure_topics
from tests.support.databases import own_database
from tests.support.kafka import collect
from tests.support.services import ADMIN_TOKEN, Infra
from tests.trigger_engine.engine_support import event, eventually

pytestmark = pytest.mark.slow

CUSTOMERS = 300
KILLS = 10
RULES = [
    {  # a send at once: actions while the engines are killed
        "key": "crash-thanks",
        "name": "thanks",
        "trigger": {"type": "event", "event": "Product Added"},
        "steps": [{"send": {"channel": "email", "template": "thanks"}}],
        "reentry": "PT1S",
    },
    {  # a wait that outlives the test: pending timers in every state
        "key": "crash-cart",
        "name": "cart",
        "trigger": {"type": "event", "event": "Product Added"},
        "steps": [{"wait": "PT1H"}, {"send": {"channel": "email", "template": "cart"}}],
        "exit_when": [{"event": "Order Completed"}],
        "reentry": "P1D",
        "goal": {"event": "Order Completed", "within": "P7D"},
    },
]


class Engines:
    """Engine processes on one topic and database, killed and started again by the test."""

    def __init__(self, infra: Infra, database_url: str, topic: str) -> None:
        self.env = dict(
            os.environ,
            CLM_DATABASE_URL=database_url,
            CLM_KAFKA_BOOTSTRAP=infra.bootstrap,
            CLM_ADMIN_TOKEN=ADMIN_TOKEN,
            CLM_DEV_MODE="true",
            CLM_MIGRATE_ON_START="false",
            CLM_LOG_LEVEL="WARNING",
            CLM_EVENTS_TOPIC=topic,
            CLM_HANDOFF_TOPIC=f"{topic}-handoff",
            CLM_CONSUMER_GROUP=f"{topic}-group",
            CLM_CHECKPOINT_MS="100",
            CLM_CONSUMER_MAX_RECORDS="50",
            CLM_RUN_RETENTION="false",
        )
        self.procs: list[asyncio.subprocess.Process | None] = [None, None]

    async def start(self, index: int) -> None:
        env = {**self.env, "CLM_ENGINE_PORT": str(free_port())}
        self.procs[index] = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.trigger_engine", env=env
        )

    async def kill(self, index: int) -> None:
        proc = self.procs[index]
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

    async def stop(self) -> None:
        for proc in self.procs:
            if proc is not None and proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 30)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()


@pytest.fixture
async def crash_db(infra: Infra) -> AsyncIterator[str]:
    async with own_database(infra.database_url, prefix="clm_crash") as url:
        engine = create_engine(url, pool_size=1)
        try:
            async with transaction(session_factory(engine)) as session:
                for body in RULES:
                    await rules_repo.create(session, parse_rule(body), now=datetime.now(UTC))
        finally:
            await engine.dispose()
        yield url


def workload(prefix: str) -> list[EventV1]:
    """A storefront of known customers (adds, views, orders), in event-time order."""
    rng = random.Random(7)
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    events: list[EventV1] = []
    for n in range(CUSTOMERS * 10):
        customer = f"{prefix}-c{rng.randrange(CUSTOMERS)}"
        name = rng.choices(["Product Viewed", "Product Added", "Order Completed"], [5, 3, 1])[0]
        properties: dict[str, Any] = {"product_id": f"p{rng.randrange(9)}", "price": 20}
        if name == "Order Completed":
            properties = {"order_id": f"o{n}", "total": 40}
        events.append(event(customer, name, at=t0 + timedelta(seconds=n), properties=properties))
    return events


def replay(events: list[EventV1], *, now: datetime) -> tuple[dict[str, CustomerState], set[str]]:
    """The same events through the core, customer by customer: states and action ids."""
    rules = RuleSet.of([parse_rule(body) for body in RULES])
    by_customer: dict[str, list[Event]] = defaultdict(list)
    for item in events:
        by_customer[item.customer_key].append(decode_plain_event(item.to_bytes()))
    states: dict[str, CustomerState] = {}
    actions: set[str] = set()
    for key, inputs in by_customer.items():
        result = step_many(
            CustomerState.new(key), inputs, rules=rules, lifecycle=default_lifecycle(), now=now
        )
        states[key] = result.state
        actions.update(e.action_id for e in result.effects if isinstance(e, EmitAction))
    return states, actions


async def stored(database_url: str, prefix: str) -> dict[str, CustomerState]:
    conn = await store.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT customer_key, state FROM engine.customers WHERE customer_key LIKE $1",
            f"{prefix}-%",
        )
    finally:
        await conn.close()
    return {key: decode_state(raw) for key, raw in rows}


def comparable(state: CustomerState) -> bytes:
    return encode_state(state)


async def test_engines_killed_under_load_lose_nothing_and_send_nothing_twice(
    infra: Infra, crash_db: str, prefix: str
) -> None:
    topic = f"it-crash-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.bootstrap, TopicConfig(partitions=4), names=(topic,))
    events = workload(prefix)
    expected_states, expected_actions = replay(events, now=datetime.now(UTC))
    engines = Engines(infra, crash_db, topic)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    rng = random.Random(11)
    kills = 0
    try:
        await engines.start(0)
        await engines.start(1)
        chunk = len(events) // (KILLS + 1)
        for start in range(0, len(events), chunk):
            for item in events[start : start + chunk]:
                await producer.send(topic, item.to_bytes(), key=item.customer_key.encode())
            await producer.flush()
            if kills < KILLS:
                await asyncio.sleep(rng.uniform(0.05, 0.6))  # the engines are mid-work
                victim = kills % 2
                await engines.kill(victim)
                await engines.start(victim)
                kills += 1

        async def converged() -> dict[str, CustomerState] | None:
            found = await stored(crash_db, prefix)
            same = found.keys() == expected_states.keys() and all(
                comparable(found[k]) == comparable(expected_states[k]) for k in found
            )
            return found if same else None

        await eventually(converged, timeout=120, what="the stored states to equal the replay")
    finally:
        await producer.stop()
        await engines.stop()

    assert kills == KILLS
    published = await collect(
        infra.bootstrap,
        topics.ACTIONS,
        decode=decode_action_topic,
        match=lambda r: r.customer_key.startswith(f"{prefix}-"),
        count=len(expected_actions),
        timeout=60,
        settle=1.0,
    )
    ids = [a.action_id for a in published if hasattr(a, "action_id")]
    assert set(ids) == expected_actions  # none lost, none that the replay would not send
    print(
        f"crash test: {kills} kills, {len(expected_actions)} actions, "
        f"{len(ids) - len(set(ids))} published again under their id"
    )
