"""One writer per partition: a checkpoint writes only while its owner still owns the partition.

Claiming a partition raises its generation in PostgreSQL; a checkpoint carrying an older
generation (an owner that lost the partition without knowing: a long pause, a network
partition) is refused whole, so a zombie can never overwrite what the new owner writes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import REGISTRY

from services.trigger_engine.core.state import CustomerState, decode_state
from services.trigger_engine.stream import store
from services.trigger_engine.stream.handoff import partition_of
from services.trigger_engine.stream.rows import state_row
from services.trigger_engine.stream.runner import Owner
from shared import topics
from shared.kafka.admin import ensure_topics
from tests.support.services import Infra
from tests.trigger_engine.engine_support import Engine, event, eventually, produce

#: The partitions of clm.events the test infrastructure creates.
PARTITIONS = 8

MUG = {"product_id": "p-mug", "price": 25}


@pytest.fixture
async def connection(infra: Infra) -> AsyncIterator[asyncpg.Connection]:
    conn = await store.connect(infra.database_url)
    yield conn
    await conn.close()


def _rows(state: CustomerState, mark: tuple[int, int]) -> store.CheckpointRows:
    partition, generation = mark
    return store.CheckpointRows(
        marks=[(partition, generation, 10, None, None, None, None, 0, 0)],
        states=[state_row(state, partition, None)],
        removed=[],
        links=[],
        merges=[],
        transitions=[],
        runs=[],
        events=[],
        log=[],
        outbox=[],
        published=[],
        erased=[],
    )


async def test_a_checkpoint_of_a_superseded_generation_writes_nothing(
    connection: asyncpg.Connection, prefix: str
) -> None:
    topic = f"it-fence-{prefix}"  # partitions rows of a topic nobody consumes
    [old] = await store.claim(connection, topic, [0], count=1, owner="old-owner")
    state = CustomerState.new(f"{prefix}-c")
    await store.checkpoint(connection, topic, _rows(state, (0, old.generation)), now=_now())
    [new] = await store.claim(connection, topic, [0], count=1, owner="new-owner")
    assert new.generation == old.generation + 1
    assert new.events_offset == 10  # where the old owner's checkpoint left the partition

    state.profile.cart_adds = 99
    with pytest.raises(store.Fenced):
        await store.checkpoint(connection, topic, _rows(state, (0, old.generation)), now=_now())

    raw = await connection.fetchval(
        "SELECT state FROM engine.customers WHERE customer_key = $1", state.customer_key
    )
    assert decode_state(raw).profile.cart_adds == 0  # the zombie's write never happened
    with pytest.raises(store.Fenced):
        await store.flush_actions(connection, topic, [(0, old.generation)], [])
    # The new owner writes as usual.
    await store.checkpoint(connection, topic, _rows(state, (0, new.generation)), now=_now())


async def test_a_checkpoint_bigger_than_a_chunk_is_written_whole_or_not_at_all(
    connection: asyncpg.Connection, prefix: str
) -> None:
    """More states and log rows than one call takes go first, in chunks, in the same
    transaction: all of them land with the offsets, and a fenced checkpoint writes none."""
    topic = f"it-chunks-{prefix}"
    [owner] = await store.claim(connection, topic, [0], count=1, owner="owner")
    count = store.CHECKPOINT_CHUNK * 2 + 7
    states = [CustomerState.new(f"{prefix}-{i:05}") for i in range(count)]
    for state in states:
        state.profile.cart_adds = 1
    when = _now()
    # Log rows of a time no simulation of another test reads (the database is shared).
    long_ago = datetime(2001, 1, 1, tzinfo=UTC)
    log = [
        (s.customer_key, 0, i, long_ago, long_ago, long_ago, 1, b"[]") for i, s in enumerate(states)
    ]
    # The first customer was merged away in this interval and came back: deleted first,
    # then written, as the single call does.
    gone = states[0].customer_key
    await store.checkpoint(connection, topic, _rows(states[0], (0, owner.generation)), now=when)
    big = dataclasses.replace(
        _rows(states[0], (0, owner.generation)),
        states=[state_row(s, 0, None) for s in states],
        log=log,
        removed=[gone],
    )
    await store.checkpoint(connection, topic, big, now=when)
    keys = [s.customer_key for s in states]
    stored = await connection.fetchval(
        "SELECT count(*) FROM engine.customers WHERE customer_key = ANY($1)", keys
    )
    logged = await connection.fetchval(
        "SELECT count(*) FROM engine.event_log WHERE customer_key = ANY($1)", keys
    )
    assert (stored, logged) == (count, count)

    [new] = await store.claim(connection, topic, [0], count=1, owner="new-owner")
    for state in states:
        state.profile.cart_adds = 2
    zombie = dataclasses.replace(
        big,
        states=[state_row(s, 0, None) for s in states],
        log=[(key, 0, offset + count, *rest) for key, _, offset, *rest in log],
    )
    with pytest.raises(store.Fenced):
        await store.checkpoint(connection, topic, zombie, now=when)
    rows = await connection.fetch(
        "SELECT state FROM engine.customers WHERE customer_key = ANY($1)", keys
    )
    assert {decode_state(row["state"]).profile.cart_adds for row in rows} == {1}
    logged = await connection.fetchval(
        "SELECT count(*) FROM engine.event_log WHERE customer_key = ANY($1)", keys
    )
    assert logged == count
    assert new.generation == owner.generation + 1
    await connection.execute("DELETE FROM engine.event_log WHERE customer_key = ANY($1)", keys)
    await connection.execute("DELETE FROM engine.customers WHERE customer_key = ANY($1)", keys)


async def test_an_owner_that_lost_its_partition_stops_and_resumes_from_the_checkpoint(
    infra: Infra, engine: Engine, producer: AIOKafkaProducer, prefix: str
) -> None:
    assert engine.service is not None
    shopper = f"{prefix}-shopper"
    await produce(producer, event(shopper, "Product Added", properties=MUG))
    await eventually(lambda: _cart_adds(engine, shopper, 1), what="the first add")
    partition = partition_of(shopper, PARTITIONS)
    restarts = _restarts()

    # Another owner claims the partition behind the engine's back (a rebalance it missed):
    # from now on this engine is a zombie for it.
    conn = await store.connect(infra.database_url)
    try:
        await store.claim(conn, topics.EVENTS, [partition], count=PARTITIONS, owner="another")
    finally:
        await conn.close()
    await produce(producer, event(shopper, "Product Added", properties=MUG))

    # Its checkpoint is refused; the owner stops, is restarted, claims the partition anew
    # and replays from the last checkpoint: the second add is folded once, not twice.
    await eventually(lambda: _cart_adds(engine, shopper, 2), timeout=60, what="the replay")
    assert _restarts() > restarts
    await produce(producer, event(shopper, "Product Viewed", properties=MUG))
    found = await eventually(lambda: _viewed(engine, shopper), timeout=30, what="a later event")
    assert found["metrics"]["cart_adds"] == 2


async def _cart_adds(engine: Engine, customer: str, adds: int) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    return found if found is not None and found["metrics"]["cart_adds"] == adds else None


async def _viewed(engine: Engine, customer: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    if found is None:
        return None
    return found if found["metrics"]["last_seen_at"] != found["metrics"]["first_seen_at"] else None


def _restarts() -> float:
    value = REGISTRY.get_sample_value("clm_background_restarts_total", {"job": "partition-owner"})
    return value or 0.0


def _now() -> datetime:
    return datetime.now(UTC)


async def test_an_owner_refuses_a_partition_count_the_stored_states_were_not_made_for(
    engine: Engine, connection: asyncpg.Connection, infra: Infra, prefix: str
) -> None:
    """Every customer belongs to the partition of its key: a count that changed (here
    from 3 to 2) would give customers two owners, so the owner does not start."""
    ctx = engine.service.app.state.engine
    topic = f"it-count-{prefix}"
    config = dataclasses.replace(ctx.settings.topic_config(), partitions=2)
    await ensure_topics(infra.bootstrap, config, names=(topic,))
    await store.claim(connection, topic, [0, 1, 2], count=3, owner="earlier")
    owner = Owner(ctx, topic=topic, handoff_topic=f"{topic}.handoff", group=f"g-{prefix}")
    with pytest.raises(RuntimeError, match="partitioned for 3"):
        await owner.run(asyncio.Event(), idle_timeout=10)
