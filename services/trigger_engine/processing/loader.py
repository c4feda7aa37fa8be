"""Reading a batch's customers: identity links, then the states, locked in key order.

Every writer of customer state (the event consumer, the timer worker, erasure) locks the
customer rows it touches with ``SELECT … ORDER BY customer_key FOR UPDATE`` before reading
them, so two instances never fold the same customer at once, and a merge of two customers
held by different partitions (hence maybe different instances) is serialized with both.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from asyncpg import Connection, UniqueViolationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.state import CustomerState, decode_state
from services.trigger_engine.processing.cache import StateCache
from shared.envelope import Event


class ConcurrentChange(Exception):
    """Another transaction changed the identities of this batch's customers: redo it."""


_LINKS = text(
    "SELECT anonymous_id, customer_key FROM engine.identity_links "
    "WHERE anonymous_id = ANY(CAST(:ids AS text[]))"
)

_LOCK = text(
    "SELECT customer_key, xmin::text::bigint FROM engine.customers "
    "WHERE customer_key = ANY(CAST(:keys AS text[])) ORDER BY customer_key FOR UPDATE"
)

_READ = text(
    "SELECT customer_key, state FROM engine.customers "
    "WHERE customer_key = ANY(CAST(:keys AS text[]))"
)

_EVENT_COLUMNS = (
    "event_id",
    "customer_key",
    "source",
    "message_id",
    "call",
    "event",
    "timestamp",
    "received_at",
    "payload",
)

_INSERT_EVENTS = text(
    "INSERT INTO engine.events "
    "(event_id, customer_key, source, message_id, call, event, timestamp, received_at, payload) "
    "SELECT i, k, s, m, c, e, t, r, CAST(p AS jsonb) FROM unnest("
    "CAST(:ids AS uuid[]), CAST(:keys AS text[]), CAST(:sources AS text[]), "
    "CAST(:message_ids AS text[]), CAST(:calls AS text[]), CAST(:events AS text[]), "
    "CAST(:times AS timestamptz[]), CAST(:received AS timestamptz[]), CAST(:payloads AS text[])"
    ") AS x(i, k, s, m, c, e, t, r, p) "
    "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)


async def load_links(session: AsyncSession, ids: Collection[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = await session.execute(_LINKS, {"ids": list(ids)})
    return {anonymous: key for anonymous, key in rows}


@dataclass(frozen=True)
class Locked:
    """The locked customers that exist: their states (now the caller's own) and the row
    versions those states are the content of (see :mod:`.cache`)."""

    states: dict[str, CustomerState]
    versions: dict[str, int]


async def lock_states(
    session: AsyncSession, keys: Collection[str], cache: StateCache | None = None
) -> Locked:
    """Lock the rows of ``keys`` and load the states that exist (missing keys are new
    customers): from ``cache`` when it holds the row's current version, else decoded."""
    if not keys:
        return Locked({}, {})
    rows = await session.execute(_LOCK, {"keys": sorted(keys)})
    versions: dict[str, int] = {key: version for key, version in rows}
    states: dict[str, CustomerState] = {}
    unread: list[str] = []
    for key, version in versions.items():
        state = cache.take(key, version) if cache is not None else None
        if state is None:
            unread.append(key)
        else:
            states[key] = state
    if unread:
        rows = await session.execute(_READ, {"keys": unread})
        for key, raw in rows:
            states[key] = decode_state(raw)
    return Locked(states, versions)


async def check_unlinked(
    session: AsyncSession, missing: Collection[str], known: dict[str, str]
) -> None:
    """Raise :class:`ConcurrentChange` if a customer we found missing was merged meanwhile."""
    if not missing:
        return
    links = await load_links(session, missing)
    if any(known.get(key) != target for key, target in links.items()):
        raise ConcurrentChange("a customer of this batch was merged concurrently")


async def store_events(
    session: AsyncSession,
    events: Sequence[tuple[Event, str, str]],
) -> set[str]:
    """Insert ``(event, customer key, raw JSON)`` rows; return the ids that were new.

    Ids already stored belong to a batch that committed before (a redelivery after a crash
    between the database commit and the offset commit): their effects exist already.
    """
    if not events:
        return set()
    # Almost always every event is new: copy them in, in a savepoint. If one was stored
    # already (a redelivery after a crash), the savepoint alone is rolled back and the
    # exact ``ON CONFLICT DO NOTHING`` insert below says which ones were new.
    driver = await _driver_connection(session)
    try:
        async with driver.transaction():
            await driver.copy_records_to_table(
                "events",
                schema_name="engine",
                columns=_EVENT_COLUMNS,
                records=[
                    (
                        e.event_id,
                        key,
                        e.source,
                        e.message_id,
                        e.call,
                        e.event,
                        e.timestamp,
                        e.received_at,
                        raw,
                    )
                    for e, key, raw in events
                ],
            )
        return {e.event_id_text for e, _, _ in events}
    except UniqueViolationError:
        pass
    rows = await session.execute(
        _INSERT_EVENTS,
        {
            "ids": [e.event_id for e, _, _ in events],
            "keys": [key for _, key, _ in events],
            "sources": [e.source for e, _, _ in events],
            "message_ids": [e.message_id for e, _, _ in events],
            "calls": [e.call for e, _, _ in events],
            "events": [e.event for e, _, _ in events],
            "times": [e.timestamp for e, _, _ in events],
            "received": [e.received_at for e, _, _ in events],
            "payloads": [raw for _, _, raw in events],
        },
    )
    return {str(event_id) for (event_id,) in rows}


async def _driver_connection(session: AsyncSession) -> Connection:
    """The asyncpg connection under ``session``, inside the session's open transaction."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: Connection = raw.driver_connection
    if not driver.is_in_transaction():
        raise RuntimeError("expected the session's transaction to be open")
    return driver
