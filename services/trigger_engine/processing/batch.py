"""One batch of events through the engine, inside the caller's transaction.

    links → store events (new ones only) → lock customers (key order) → config → fold → write

The caller (the consumer's edge) opens the transaction and commits; the Kafka offsets are
committed after that. A batch redelivered after a crash between the two finds its events
already stored and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.config_cache import ConfigCache
from services.trigger_engine.processing.cache import StateCache
from services.trigger_engine.processing.fold import Fold, identity_ids, keys_to_lock, resolve
from services.trigger_engine.processing.loader import (
    check_unlinked,
    load_links,
    lock_states,
    store_events,
)
from services.trigger_engine.processing.writer import Written, write_fold
from shared.envelope import Event


@dataclass(frozen=True)
class BatchOutcome:
    folded: int
    duplicates: int
    written: Written


async def handle_events(
    session: AsyncSession,
    config: ConfigCache,
    events: Sequence[tuple[Event, str]],
    *,
    now: datetime,
    grace: timedelta,
    cache: StateCache | None = None,
) -> BatchOutcome:
    """Fold ``(event, raw JSON)`` pairs into their customers and write the result.

    States come from ``cache`` where it holds their current row version; after the commit
    the caller puts ``outcome.written.states`` back into it (not before: see :mod:`.cache`).
    """
    unique: dict[str, tuple[Event, str]] = {}
    for event, raw in events:
        unique.setdefault(event.event_id_text, (event, raw))
    batch = list(unique.values())
    links = await load_links(session, identity_ids(e for e, _ in batch))
    keys = keys_to_lock((e for e, _ in batch), links)
    # The event store needs no customer lock: store first, so the locks are held the
    # shorter (another instance may be waiting for a customer both batches touch).
    fresh = await store_events(
        session, [(e, resolve(e.customer_key, links), raw) for e, raw in batch]
    )
    locked = await lock_states(session, keys, cache)
    states = locked.states
    # Read under the locks: a batch that locks a customer after a lifecycle pass moved it
    # sees the model the pass applied (or a newer one), never the one before.
    engine_config = await config.get(session)
    await check_unlinked(session, keys - states.keys(), links)
    fold = Fold(
        config=engine_config,
        now=now,
        states=states,
        links=links,
        existing=set(states),
        versions=locked.versions,
    )
    folded = 0
    for event, _ in batch:
        if event.event_id_text in fresh:
            fold.apply_event(event)
            folded += 1
    written = await write_fold(session, fold, grace=grace)
    return BatchOutcome(folded=folded, duplicates=len(events) - folded, written=written)
