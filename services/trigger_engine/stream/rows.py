"""The rows a checkpoint writes, as the tuples of ``engine.checkpoint``'s composite types.

Every row is keyed by an id derived from its cause (see ``core/derive.py``), so a row written
twice (a batch replayed after a crash) is written once: ``ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import msgspec

from services.trigger_engine.core.effects import (
    CancelActions,
    EmitAction,
    StageTransition,
)
from services.trigger_engine.core.state import CustomerState, encode_state
from services.trigger_engine.partitions.watermark import release_at
from shared.envelope import Event
from shared.ids import derive_text

#: Events kept one row each in ``engine.events`` (the lifecycle metrics read them); the
#: others go to ``engine.event_log``, one row per customer and checkpoint.
COMMERCE_EVENTS: Final = frozenset(
    {"Order Completed", "Order Refunded", "Order Cancelled", "Survey Responded"}
)

StateRow = tuple[Any, ...]


def transition_id(effect: StageTransition) -> str:
    """The uuid (as text: cheaper, and asyncpg takes it) of the transition's row."""
    return derive_text(
        "transition",
        effect.customer_key,
        effect.from_stage or "-",
        effect.to_stage,
        effect.at.isoformat(),
    )


def transition_row(effect: StageTransition) -> tuple[Any, ...]:
    return (
        transition_id(effect),
        effect.customer_key,
        effect.from_stage,
        effect.to_stage,
        effect.at,
        effect.cause,
        effect.cause_event,
        effect.cause_message_id,
        effect.reactivated,
    )


def outbox_row(action: EmitAction, partition: int) -> tuple[Any, ...]:
    return (
        action.action_id,
        action.customer_key,
        partition,
        "action",
        action.to_action().to_bytes().decode(),
        action.created_at,
    )


def cancel_row(cancel: CancelActions, partition: int) -> tuple[Any, ...]:
    """The outbox row of a run's cancellation: flushed and published with the actions (its id
    is derived from the run, so a replay writes it once), keyed by the run's customer."""
    return (
        cancel.cancel_id,
        cancel.customer_key,
        partition,
        "cancel",
        cancel.to_record().to_bytes().decode(),
        cancel.at,
    )


def outbox_kind(row_id: str) -> str:
    """What an outbox row is, from its id: ``erasure``, ``cancel`` or ``action`` (the label of
    ``clm_engine_outbox_published_total``)."""
    if row_id.startswith("erasure_"):
        return "erasure"
    return "cancel" if row_id.startswith("cancel_") else "action"


def next_release(state: CustomerState, *, grace: Any) -> datetime | None:
    """The earliest instant one of the customer's timers may fire (see ``release_at``)."""
    earliest: datetime | None = None
    for timer in state.timers.values():
        at = release_at(timer.due_at, timer.arrived_at, grace=grace)
        if earliest is None or at < earliest:
            earliest = at
    return earliest


def state_row(state: CustomerState, partition: int, released: datetime | None) -> StateRow:
    profile = state.profile
    return (
        state.customer_key,
        partition,
        encode_state(state),
        state.stage,
        state.stage_entered_at,
        released,
        profile.user_id,
        email.lower() if (email := profile.email) is not None else None,
        profile.phone,
        profile.orders,
        profile.revenue,
        profile.first_seen_at,
        profile.last_seen_at,
        profile.first_order_at,
        profile.last_order_at,
    )


def event_row(event: Event, customer_key: str, raw: bytes) -> tuple[Any, ...]:
    return (
        uuid.UUID(event.event_id),
        customer_key,
        event.source,
        event.message_id,
        event.call,
        event.event,
        event.timestamp,
        event.received_at,
        raw.decode(),
    )


class LogRow:
    """One customer's non-commerce events of one checkpoint, as a JSON array."""

    __slots__ = ("first_at", "last_at", "offset", "partition", "raws", "received_at")

    def __init__(self, event: Event, raw: bytes, *, partition: int, offset: int) -> None:
        self.partition = partition
        self.offset = offset
        self.first_at = self.last_at = event.timestamp
        self.received_at = event.received_at
        self.raws = [raw]

    def add(self, event: Event, raw: bytes) -> None:
        self.raws.append(raw)
        self.first_at = min(self.first_at, event.timestamp)
        self.last_at = max(self.last_at, event.timestamp)
        self.received_at = max(self.received_at, event.received_at)

    def row(self, customer_key: str) -> tuple[Any, ...]:
        return (
            customer_key,
            self.partition,
            self.offset,
            self.first_at,
            self.last_at,
            self.received_at,
            len(self.raws),
            b"[" + b",".join(self.raws) + b"]",
        )


_LOG = msgspec.json.Decoder(list[Event])


def decode_log(records: bytes) -> list[Event]:
    """The events of an ``engine.event_log`` row."""
    return _LOG.decode(records)
