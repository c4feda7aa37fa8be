"""A validated Segment message → the :class:`~shared.envelope.EventV1` on ``clm.events``.

Pure: the source and the time of receipt are passed in; nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.ingest.tracking.messages import (
    AliasMessage,
    AnyMessage,
    GroupMessage,
    IdentifyMessage,
    PageMessage,
    ScreenMessage,
    TrackMessage,
    as_utc,
)
from shared.envelope import EventV1
from shared.ids import event_id


def correct_timestamp(
    timestamp: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """The event time corrected for the client's clock skew, as Segment does.

    ``timestamp + (received_at - sent_at)``: the client's clock is assumed to be off by
    the difference between when it says it sent the message and when we received it. No
    ``timestamp`` → ``received_at``; no ``sent_at`` → ``timestamp`` unchanged. A ``sent_at``
    earlier than ``timestamp`` contradicts the message (it cannot be sent before it happened:
    a ``sentAt`` of year 1 with a ``timestamp`` of today) and is ignored like a missing one,
    rather than moving the event thousands of years. The result is UTC-aware; naive inputs
    are taken as UTC. Raises ``OverflowError`` when the correction leaves the range of
    ``datetime`` (only absurd inputs do that).
    """
    received = as_utc(received_at)
    if timestamp is None:
        return received
    client_time = as_utc(timestamp)
    if sent_at is None:
        return client_time
    sent = as_utc(sent_at)
    if sent < client_time:
        return client_time
    return client_time + (received - sent)


def merge_context(batch_context: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """``context`` over ``batch_context``: nested objects merge, the message's values win.

    Neither argument is modified.
    """
    if not batch_context:
        return context
    if not context:
        return batch_context
    merged = dict(batch_context)
    for key, value in context.items():
        below = merged.get(key)
        if isinstance(value, dict) and isinstance(below, dict):
            merged[key] = merge_context(below, value)
        else:
            merged[key] = value
    return merged


def _context_traits(context: dict[str, Any]) -> dict[str, Any]:
    traits = context.get("traits")
    return traits if isinstance(traits, dict) else {}


def normalize(
    message: AnyMessage,
    *,
    source: str,
    new_message_id: Callable[[], str],
    received_at: datetime,
    batch_context: dict[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
) -> EventV1:
    """The envelope of one validated message.

    - ``customer_key``: ``userId``, else ``anonymousId``.
    - ``event``: the track event name, or the page/screen ``name`` (``None`` otherwise).
    - ``traits``: identify → ``context.traits`` overlaid with ``traits``; group → the group's
      ``traits``; track/page/screen/alias → ``context.traits`` (Segment's convention for
      traits known when the event happened).
    - ``properties``: track/page/screen properties; page/screen ``name`` and ``category``
      are added to them when they are not already there, so no sent field is lost.
    - ``context``: ``batch_context`` (the batch's ``context``) merged under the message's.
    - ``timestamp``: the client's ``timestamp`` (else ``originalTimestamp``, which is how
      RudderStack clients send it) corrected by :func:`correct_timestamp`, with the message's
      ``sentAt`` or else the batch's; ``original_timestamp`` is the client's uncorrected one.
    - ``message_id``: the message's ``messageId``, else ``new_message_id()`` (a fresh one).
    - ``event_id``: ``shared.ids.event_id(source, messageId)``.
    """
    received = as_utc(received_at)
    context = merge_context(batch_context, message.context) if batch_context else message.context
    client_time = message.timestamp if message.timestamp is not None else message.original_timestamp
    sent_at = message.sent_at if message.sent_at is not None else batch_sent_at
    if sent_at is not None:
        sent_at = as_utc(sent_at)

    event: str | None = None
    properties: dict[str, Any] = {}
    traits: dict[str, Any]
    previous_id: str | None = None
    group_id: str | None = None
    if isinstance(message, TrackMessage):
        event = message.event
        properties = message.properties
        traits = _context_traits(context)
    elif isinstance(message, PageMessage | ScreenMessage):
        event = message.name
        properties = message.properties
        if (message.name is not None and "name" not in properties) or (
            message.category is not None and "category" not in properties
        ):
            properties = dict(properties)
            if message.name is not None:
                properties.setdefault("name", message.name)
            if message.category is not None:
                properties.setdefault("category", message.category)
        traits = _context_traits(context)
    elif isinstance(message, IdentifyMessage):
        below = _context_traits(context)
        traits = {**below, **message.traits} if below else message.traits
    elif isinstance(message, GroupMessage):
        traits = message.traits
        group_id = message.group_id
    elif isinstance(message, AliasMessage):
        previous_id = message.previous_id
        traits = _context_traits(context)
    else:  # pragma: no cover - exhaustive over AnyMessage
        raise TypeError(f"not a Segment message: {type(message).__name__}")

    message_id = message.message_id if message.message_id is not None else new_message_id()
    return EventV1(
        event_id=event_id(source, message_id),
        source=source,
        message_id=message_id,
        customer_key=message.customer_key,
        call=message.call,
        event=event,
        user_id=message.user_id,
        anonymous_id=message.anonymous_id,
        previous_id=previous_id,
        group_id=group_id,
        properties=properties,
        traits=traits,
        context=context,
        timestamp=correct_timestamp(client_time, sent_at, received),
        original_timestamp=client_time,
        sent_at=sent_at,
        received_at=received,
    )
