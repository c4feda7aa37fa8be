"""Reading a batch's customers: identity links, then the states, locked in key order.

Every writer of customer state (the event consumer, the timer worker, erasure) locks the
customer rows it touches with ``SELECT … ORDER BY customer_key FOR UPDATE`` before reading
them, so two instances never fold the same customer at once, and a merge of two customers
held by different partitions (hence maybe different instances) is serialized with both.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.core.state import CustomerState
from shared.envelope import EventV1


class ConcurrentChange(Exception):
    """Another transaction changed the identities of this batch's customers: redo it."""


_LINKS = text(
    "SELECT anonymous_id, customer_key FROM engine.identity_links "
    "WHERE anonymous_id = ANY(CAST(:ids AS text[]))"
)

_LOCK = text(
    "SELECT customer_key, state::text FROM engine.customers "
    "WHERE customer_key = ANY(CAST(:keys AS text[])) ORDER BY customer_key FOR UPDATE"
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


async def lock_states(session: AsyncSession, keys: Collection[str]) -> dict[str, CustomerState]:
    """Lock and load the states of ``keys`` that exist (missing keys are new customers)."""
    if not keys:
        return {}
    rows = await session.execute(_LOCK, {"keys": sorted(keys)})
    return {key: CustomerState.model_validate_json(state) for key, state in rows}


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
    events: Sequence[tuple[EventV1, str, str]],
) -> set[str]:
    """Insert ``(event, customer key, raw JSON)`` rows; return the ids that were new.

    Ids already stored belong to a batch that committed before (a redelivery after a crash
    between the database commit and the offset commit): their effects exist already.
    """
    if not events:
        return set()
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
