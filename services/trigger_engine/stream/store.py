"""The partition owner's PostgreSQL: raw asyncpg on one connection, a round trip per call.

- :func:`claim`: take partitions over (their generation goes up: the previous owner's next
  checkpoint is refused) and read where their consumption stands;
- :func:`load`: customers' states (and identity links) missing from memory;
- :func:`flush_actions`: the actions a batch produced, committed before they are published;
- :func:`checkpoint`: everything else since the last checkpoint and the consumed offsets, in
  one statement (``engine.checkpoint``, migration 0007), fenced by the generations.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import asyncpg

from services.trigger_engine.core.state import CustomerState, decode_state

#: SQLSTATE ``engine.checkpoint`` and ``engine.flush_actions`` raise when a partition of the
#: call is no longer owned by the caller's generation.
FENCED: Final = "CLM01"


class Fenced(Exception):
    """Another owner claimed one of the partitions: this instance must let them go."""


def asyncpg_url(url: str) -> str:
    """A SQLAlchemy-style URL (``postgresql+asyncpg://``) as asyncpg takes it."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql://{rest}" if sep and scheme.startswith("postgres") else url


async def connect(url: str, *, wait_for_flush: bool = True) -> asyncpg.Connection:
    """A connection of the owner. ``wait_for_flush=False``: its commits return before their
    WAL is on disk (``synchronous_commit = off``), for the loop's own connection: action
    flushes, claims and adoptions. That loses nothing: PostgreSQL writes WAL in order, so the
    checkpoint that moves the offsets past an action's event (committed synchronously, on
    the other connection) is durable only with every earlier commit; and if a server crash
    drops a recent flush, the checkpoint before it is where the replay starts, which makes
    the same action again with the same id. A flush no longer waits for a disk sync (tens to
    hundreds of milliseconds on a busy disk) before its actions are published.

    Sequential scans are disabled on both (``enable_seqscan = off``: a penalty, not a ban).
    Every statement of the owner reads or writes rows by key, and a plan made while a table
    was small (a fresh install, a back-fill, statistics not analyzed yet) must not scan it
    once it has grown: a state load planned as a scan of ``engine.customers`` compared every
    row with each of 2,000 keys (up to a second a call, measured), and re-keying a merge's
    rows scanned the whole event log at every checkpoint.

    The checkpoint's connection (``wait_for_flush``) gets 64 MB of ``work_mem``: a checkpoint
    unnests its rows (states of about a kilobyte each, tens of thousands after a busy
    interval), and with PostgreSQL's default of 4 MB those spilled to temporary files."""
    settings = {"application_name": "clm-trigger-engine-owner", "enable_seqscan": "off"}
    if wait_for_flush:
        settings["work_mem"] = "64MB"
    else:
        settings["synchronous_commit"] = "off"
    connection: asyncpg.Connection = await asyncpg.connect(
        asyncpg_url(url), server_settings=settings
    )
    return connection


@dataclass(frozen=True)
class Claimed:
    partition: int
    generation: int
    events_offset: int | None
    handoff_offset: int | None
    watermark: datetime | None
    pass_version: int | None
    pass_cursor: str | None


_ENSURE = (
    "INSERT INTO engine.partitions (topic, partition) "
    "SELECT $1, p FROM generate_series(0, $2 - 1) AS p ON CONFLICT DO NOTHING"
)
_COLUMNS = (
    "partition, generation, events_offset, handoff_offset, watermark, pass_version, pass_cursor"
)
# Locked first (FOR UPDATE): an action flush of the previous owner (FOR KEY SHARE) in flight
# finishes before the generation moves, and none starts after it with the old one.
_LOCK = (
    "SELECT partition FROM engine.partitions WHERE topic = $1 AND partition = ANY($2::int[]) "
    "ORDER BY partition FOR UPDATE"
)
_CLAIM = (
    "UPDATE engine.partitions SET generation = generation + 1, owner = $3, updated_at = now() "
    f"WHERE topic = $1 AND partition = ANY($2::int[]) RETURNING {_COLUMNS}"
)
_OWNED = (
    f"SELECT {_COLUMNS} FROM engine.partitions "
    "WHERE topic = $1 AND partition = $2 AND generation = $3"
)


async def claim(
    connection: asyncpg.Connection,
    topic: str,
    partitions: Sequence[int],
    *,
    count: int,
    owner: str,
) -> list[Claimed]:
    wanted = sorted(partitions)
    async with connection.transaction():
        await connection.execute(_ENSURE, topic, count)
        await connection.fetch(_LOCK, topic, wanted)
        rows = await connection.fetch(_CLAIM, topic, wanted, owner)
    return sorted((Claimed(*row) for row in rows), key=lambda c: c.partition)


async def checkpointed(
    connection: asyncpg.Connection, topic: str, partition: int, *, generation: int
) -> Claimed:
    """The partition as its last checkpoint left it, if ``generation`` still owns it (else
    :class:`Fenced`): where to start again after throwing away what memory held."""
    row = await connection.fetchrow(_OWNED, topic, partition, generation)
    if row is None:
        raise Fenced(f"partition {partition} is owned by another generation")
    return Claimed(*row)


async def revision(connection: asyncpg.Connection) -> int:
    """The engine configuration's revision (see ``revision.py``)."""
    value = await connection.fetchval("SELECT revision FROM engine.config_revision WHERE id = 1")
    return int(value or 0)


_LOAD = (
    "SELECT customer_key, state, NULL FROM engine.customers WHERE customer_key = ANY($1::text[]) "
    "UNION ALL SELECT anonymous_id, NULL, customer_key FROM engine.identity_links "
    "WHERE anonymous_id = ANY($1::text[])"
)


async def load(
    connection: asyncpg.Connection, keys: Sequence[str]
) -> tuple[dict[str, CustomerState], dict[str, str]]:
    """The stored states of ``keys`` (those that have one) and their identity links."""
    states: dict[str, CustomerState] = {}
    links: dict[str, str] = {}
    for key, raw, target in await connection.fetch(_LOAD, list(keys)):
        if raw is not None:
            states[key] = decode_state(raw)
        elif target is not None and target != key:
            links[key] = target
    return states, links


async def timer_index(connection: asyncpg.Connection, partition: int) -> list[tuple[str, datetime]]:
    """Every stored customer of ``partition`` with a timer, and when it next releases."""
    rows = await connection.fetch(
        "SELECT customer_key, next_release_at FROM engine.customers "
        "WHERE partition = $1 AND next_release_at IS NOT NULL",
        partition,
    )
    return [(key, at) for key, at in rows]


async def unadopted(connection: asyncpg.Connection) -> list[str]:
    """Customers stored before rows recorded their partition (migration 0007): their owners
    adopt them (the partition and the next timer release, from the state)."""
    rows = await connection.fetch(
        "SELECT customer_key FROM engine.customers WHERE partition IS NULL"
    )
    return [key for (key,) in rows]


async def adopt(connection: asyncpg.Connection, rows: Sequence[tuple[str, int, Any]]) -> None:
    """Record (customer key, partition, next timer release) for customers stored before
    rows recorded their partition (see :func:`unadopted`)."""
    if rows:
        await connection.execute(
            "UPDATE engine.customers AS c SET partition = a.partition, "
            "next_release_at = a.released FROM unnest($1::text[], $2::int[], "
            "$3::timestamptz[]) AS a(customer_key, partition, released) "
            "WHERE c.customer_key = a.customer_key AND c.partition IS NULL",
            [row[0] for row in rows],
            [row[1] for row in rows],
            [row[2] for row in rows],
        )


async def partition_count(connection: asyncpg.Connection, topic: str) -> int:
    """How many partitions of ``topic`` the engine has stored (0: none yet)."""
    value = await connection.fetchval(
        "SELECT coalesce(max(partition) + 1, 0) FROM engine.partitions WHERE topic = $1", topic
    )
    return int(value)


async def pass_finished(connection: asyncpg.Connection, version: int) -> bool:
    """Whether the lifecycle pass of ``version`` finished (on every partition)."""
    value = await connection.fetchval(
        "SELECT finished_at IS NOT NULL FROM engine.lifecycle_passes WHERE version = $1", version
    )
    return bool(value)


async def scan(
    connection: asyncpg.Connection, partition: int, *, after: str, limit: int
) -> list[str]:
    """The next ``limit`` stored customers of ``partition`` after ``after``, in key order."""
    rows = await connection.fetch(
        "SELECT customer_key FROM engine.customers WHERE partition = $1 AND customer_key > $2 "
        "ORDER BY customer_key LIMIT $3",
        partition,
        after,
        limit,
    )
    return [key for (key,) in rows]


async def unpublished(
    connection: asyncpg.Connection, partitions: Sequence[int]
) -> list[tuple[str, str, str, int | None]]:
    """(id, customer key, payload, partition) of the partitions' outbox rows not yet
    published, and of rows stored before partitions were recorded (partition None: the
    caller keeps those whose key is on its partitions)."""
    rows = await connection.fetch(
        "SELECT id, customer_key, payload::text, partition FROM engine.outbox "
        "WHERE published_at IS NULL AND (partition = ANY($1::int[]) OR partition IS NULL) "
        "ORDER BY seq",
        list(partitions),
    )
    return [(row_id, key, payload, partition) for row_id, key, payload, partition in rows]


async def flush_actions(
    connection: asyncpg.Connection,
    topic: str,
    fence: Sequence[tuple[int, int]],
    rows: Sequence[tuple[Any, ...]],
) -> list[str]:
    """Write outbox rows now; return the ids of those not published yet (to publish)."""
    try:
        new: list[str] = await connection.fetchval(
            "SELECT engine.flush_actions($1, $2::int[], $3::bigint[], $4::engine.outbox_row[])",
            topic,
            [partition for partition, _ in fence],
            [generation for _, generation in fence],
            list(rows),
        )
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == FENCED:
            raise Fenced(str(exc)) from exc
        raise
    return new


_JOURNAL_HANDOFFS = (
    'INSERT INTO engine.handoff_journal (key, body, partition, "offset") '
    "SELECT * FROM unnest($1::text[], $2::bytea[], $3::int[], $4::bigint[])"
)

_PRUNE_HANDOFFS = (
    "DELETE FROM engine.handoff_journal AS h USING engine.partitions AS p "
    "WHERE p.topic = $1 AND p.partition = ANY($2::int[]) AND h.partition = p.partition "
    'AND h."offset" < p.handoff_offset'
)


async def journal_handoffs(
    connection: asyncpg.Connection, sent: Sequence[tuple[str, bytes, int, int]]
) -> None:
    """Keep hand-off records the broker acknowledged, (key, body, partition, offset), until
    their partition has consumed them (migration 0008). Called before the checkpoint that
    covers their cause: a crash in between replays the cause, which sends them again."""
    if sent:
        keys, bodies, partitions, offsets = zip(*sent, strict=True)
        await connection.execute(
            _JOURNAL_HANDOFFS, list(keys), list(bodies), list(partitions), list(offsets)
        )


async def prune_handoffs(
    connection: asyncpg.Connection, topic: str, partitions: Sequence[int]
) -> None:
    """Forget the journalled hand-offs that ``partitions`` have checkpointed past."""
    await connection.execute(_PRUNE_HANDOFFS, topic, list(partitions))


@dataclass(frozen=True)
class Checkpointed:
    revision: int
    #: every partition of the topic: its watermark (None until established)
    watermarks: dict[int, datetime | None]
    #: erasures due on the caller's partitions: (id, customer key, requested at)
    erasures: list[tuple[uuid.UUID, str, datetime]]
    #: outbox rows of the checkpoint (erasure notices) not published yet: to publish
    to_publish: list[str]


@dataclass
class CheckpointRows:
    marks: list[tuple[Any, ...]]
    states: list[tuple[Any, ...]]
    removed: list[str]
    links: list[tuple[str, str]]
    merges: list[tuple[str, str]]
    transitions: list[tuple[Any, ...]]
    runs: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    log: list[tuple[Any, ...]]
    outbox: list[tuple[Any, ...]]
    published: list[str]
    erased: list[tuple[uuid.UUID, str]]


_CHECKPOINT = (
    "SELECT * FROM engine.checkpoint($1, $2::engine.partition_mark[], $3::engine.state_row[], "
    "$4::text[], $5::engine.link_row[], $6::engine.merge_row[], $7::engine.transition_row[], "
    "$8::engine.run_row[], $9::engine.event_row[], $10::engine.log_row[], "
    "$11::engine.outbox_row[], $12::text[], $13::engine.erasure_done[], $14)"
)


#: States (and event-log rows) a checkpoint call takes at most; a bigger checkpoint (the
#: owner was busy: it collects the next one only once the last is written) writes the rest
#: first, in chunks of this many, in the same transaction. asyncpg encodes a call's
#: arguments in one go, in the event loop: about a second for 20,000 states, measured, during
#: which no action of the owner went out. Between chunks the loop goes on.
CHECKPOINT_CHUNK: Final = 2000


async def checkpoint(
    connection: asyncpg.Connection, topic: str, rows: CheckpointRows, *, now: datetime
) -> Checkpointed:
    """Write ``rows`` and the offsets in one transaction: one call of ``engine.checkpoint``,
    preceded, when there are more than :data:`CHECKPOINT_CHUNK` states or log rows, by calls
    that carry only chunks of them (and, the first, the customers removed: deleted before
    any state is written, as in one call). Those have no partition marks; the last call
    checks the fence for all, so a fenced owner writes nothing."""
    if len(rows.states) <= CHECKPOINT_CHUNK and len(rows.log) <= CHECKPOINT_CHUNK:
        return await _checkpoint_call(connection, topic, rows, now=now)
    async with connection.transaction():
        states, log, removed = rows.states, rows.log, rows.removed
        while len(states) > CHECKPOINT_CHUNK or len(log) > CHECKPOINT_CHUNK:
            n = CHECKPOINT_CHUNK
            chunk = CheckpointRows(
                marks=[],
                states=states[:n] if len(states) > n else [],
                removed=removed,
                links=[],
                merges=[],
                transitions=[],
                runs=[],
                events=[],
                log=log[:n] if len(log) > n else [],
                outbox=[],
                published=[],
                erased=[],
            )
            await _checkpoint_call(connection, topic, chunk, now=now)
            states = states[n:] if len(states) > n else states
            log = log[n:] if len(log) > n else log
            removed = []
        rest = dataclasses.replace(rows, states=states, log=log, removed=[])
        return await _checkpoint_call(connection, topic, rest, now=now)


async def _checkpoint_call(
    connection: asyncpg.Connection, topic: str, rows: CheckpointRows, *, now: datetime
) -> Checkpointed:
    try:
        result = await connection.fetchrow(
            _CHECKPOINT,
            topic,
            rows.marks,
            rows.states,
            rows.removed,
            rows.links,
            rows.merges,
            rows.transitions,
            rows.runs,
            rows.events,
            rows.log,
            rows.outbox,
            rows.published,
            rows.erased,
            now,
        )
    except asyncpg.PostgresError as exc:
        if getattr(exc, "sqlstate", None) == FENCED:
            raise Fenced(str(exc)) from exc
        raise
    assert result is not None
    revision, partitions, watermarks, erasure_ids, erasure_keys, to_publish, erasure_at = result
    return Checkpointed(
        revision=int(revision or 0),
        watermarks=dict(zip(partitions or [], watermarks or [], strict=True)),
        erasures=list(zip(erasure_ids or [], erasure_keys or [], erasure_at or [], strict=True)),
        to_publish=list(to_publish or []),
    )
