"""One batch of events through the engine, inside the caller's transaction.

    links → lock customers (key order) → store events (new ones only) → fold → write

The caller (the consumer's edge) opens the transaction and commits; the Kafka offsets are
committed after that. A batch redelivered after a crash between the two finds its events
already stored and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.config_cache import ConfigCache
from services.trigger_engine.processing.fold import Fold, identity_ids, keys_to_lock
from services.trigger_engine.processing.loader import (
    check_unlinked,
    load_links,
    lock_states,
    store_events,
)
from services.trigger_engine.processing.writer import Written, write_fold
from shared.envelope import EventV1


@dataclass(frozen=True)
class BatchOutcome:
    folded: int
    duplicates: int
    written: Written


async def handle_events(
    session: AsyncSession,
    config: ConfigCache,
    events: Sequence[tuple[EventV1, str]],
    *,
    now: datetime,
) -> BatchOutcome:
    """Fold ``(event, raw JSON)`` pairs into their customers and write the result."""
    unique: dict[str, tuple[EventV1, str]] = {}
    for event, raw in events:
        unique.setdefault(str(event.event_id), (event, raw))
    batch = list(unique.values())
    engine_config = await config.get(session)
    links = await load_links(session, identity_ids(e for e, _ in batch))
    keys = keys_to_lock((e for e, _ in batch), links)
    states = await lock_states(session, keys)
    await check_unlinked(session, keys - states.keys(), links)
    fold = Fold(config=engine_config, now=now, states=states, links=links, existing=set(states))
    fresh = await store_events(session, [(e, fold.customer_of(e), raw) for e, raw in batch])
    folded = 0
    for event, _ in batch:
        if str(event.event_id) in fresh:
            fold.apply_event(event)
            folded += 1
    written = await write_fold(session, fold)
    return BatchOutcome(folded=folded, duplicates=len(events) - folded, written=written)
