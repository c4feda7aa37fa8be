"""The one entry point of ingest validation, for the HTTP layer and the Kafka consumer alike.

Every input ends as either an :class:`~shared.envelope.EventV1` or a
:class:`~services.ingest.tracking.errors.Rejection` (with its index inside a batch); nothing
is dropped. Pure: the source and the time of receipt are passed in.

Shape limits (:mod:`~services.ingest.tracking.limits`: nesting depth, keys per object, NUL
characters, number range) are checked first, on every path. The event time, after clock-skew
correction, must lie between :data:`EARLIEST_EVENT_TIME` and :data:`MAX_FUTURE` after
receipt. A message without ``messageId`` gets one from the ``new_id`` callable: a fresh
uuid4 by default (HTTP), an id derived from the record's place in the topic for Kafka (so a
redelivered record keeps its ids).

Size limits: each message (a batch member, a single-message call, a Kafka record) may be at
most :data:`MAX_MESSAGE_BYTES` of JSON, measured by serializing it compactly with orjson
(that also refuses what cannot be re-encoded, such as integers beyond 64 bits, which would
otherwise fail later on ``EventV1.to_bytes``). The :data:`MAX_BATCH_BYTES` request limit
is the HTTP layer's to enforce on the body it reads; :func:`parse_record_value` applies it to
Kafka records.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NamedTuple

import orjson
from pydantic import ValidationError

from services.ingest.tracking.ecommerce import check_properties
from services.ingest.tracking.errors import (
    BATCH_TOO_LARGE,
    INVALID_BATCH,
    INVALID_EVENT_PROPERTIES,
    INVALID_JSON,
    INVALID_MESSAGE,
    MESSAGE_TOO_LARGE,
    InvalidBody,
    Rejection,
    show,
)
from services.ingest.tracking.limits import check_shape
from services.ingest.tracking.messages import (
    CALL_TYPES,
    MESSAGE_MODELS,
    BatchBody,
    TrackMessage,
)
from services.ingest.tracking.normalize import normalize
from shared.envelope import EventV1

__all__ = [
    "EARLIEST_EVENT_TIME",
    "MAX_BATCH_BYTES",
    "MAX_FUTURE",
    "MAX_MESSAGE_BYTES",
    "BatchResult",
    "InvalidBody",
    "NewMessageId",
    "RecordResult",
    "Rejection",
    "fresh_message_id",
    "parse_batch",
    "parse_message",
    "parse_record_value",
]

MAX_MESSAGE_BYTES: Final = 32 * 1024
MAX_BATCH_BYTES: Final = 500 * 1024
#: Event times before this are refused (after clock-skew correction).
EARLIEST_EVENT_TIME: Final = datetime(2000, 1, 1, tzinfo=UTC)
#: Event times later than this after their receipt are refused (after correction).
MAX_FUTURE: Final = timedelta(days=1)

#: The ``messageId`` of a message that has none; called with its index in its batch
#: (``None`` for a message on its own).
NewMessageId = Callable[[int | None], str]


def fresh_message_id(_index: int | None) -> str:
    """A new random id: two messages without ``messageId`` are never duplicates."""
    return str(uuid.uuid4())


_NOT_AN_OBJECT: Final = Rejection(INVALID_MESSAGE, "message must be a JSON object")
_TOO_LARGE: Final = Rejection(
    MESSAGE_TOO_LARGE, f"message is over {MAX_MESSAGE_BYTES // 1024} KB of JSON"
)
_TYPES_TEXT: Final = ", ".join(CALL_TYPES)


class BatchResult(NamedTuple):
    """Accepted messages and rejected ones, each with its index in ``batch``."""

    accepted: list[tuple[int, EventV1]]
    rejected: list[tuple[int, Rejection]]


class RecordResult(NamedTuple):
    """The outcome of one Kafka record. The index is the position in the record's ``batch``,
    or ``None`` for a single-message record or a rejection of the whole record."""

    accepted: list[tuple[int | None, EventV1]]
    rejected: list[tuple[int | None, Rejection]]


def parse_message(
    raw: dict[str, Any],
    *,
    source: str,
    received_at: datetime,
    call_type: str | None,
    new_id: NewMessageId = fresh_message_id,
) -> EventV1 | Rejection:
    """Validate and normalize one message.

    ``call_type`` is the endpoint's call (``/v1/track`` → ``"track"``): it decides the
    message's type whatever its ``type`` field says, as Segment's endpoints do. ``None``
    (batch members, Kafka records) makes ``type`` required.
    """
    if not isinstance(raw, dict):
        return _NOT_AN_OBJECT
    return _parse(
        raw, source=source, received_at=received_at, call_type=call_type, new_id=new_id, index=None
    )


def parse_batch(
    body: dict[str, Any],
    *,
    source: str,
    received_at: datetime,
    new_id: NewMessageId = fresh_message_id,
) -> BatchResult:
    """Validate and normalize the messages of a ``/v1/batch`` body, each on its own.

    The batch's ``context`` is merged into each message's context and its ``sentAt`` stands
    in for members without one. A bad member rejects only itself (by index); a body that is
    not a batch at all (``batch`` missing or not a list, bad ``sentAt`` or ``context``)
    raises :class:`~services.ingest.tracking.errors.InvalidBody` (answer 400).
    """
    if not isinstance(body, dict):
        raise InvalidBody(Rejection(INVALID_BATCH, "batch body must be a JSON object"))
    problem = check_shape({k: v for k, v in body.items() if k != "batch"})
    if problem is not None:
        raise InvalidBody(Rejection(INVALID_BATCH, problem))
    try:
        envelope = BatchBody.model_validate(body)
    except ValidationError as exc:
        raise InvalidBody(Rejection.invalid(INVALID_BATCH, exc)) from None
    accepted: list[tuple[int, EventV1]] = []
    rejected: list[tuple[int, Rejection]] = []
    context = envelope.context
    sent_at = envelope.sent_at
    for index, member in enumerate(envelope.batch):
        if not isinstance(member, dict):
            rejected.append((index, _NOT_AN_OBJECT))
            continue
        outcome = _parse(
            member,
            source=source,
            received_at=received_at,
            call_type=None,
            new_id=new_id,
            index=index,
            batch_context=context,
            batch_sent_at=sent_at,
        )
        if isinstance(outcome, Rejection):
            rejected.append((index, outcome))
        else:
            accepted.append((index, outcome))
    return BatchResult(accepted, rejected)


def parse_record_value(
    value: bytes,
    *,
    default_source: str,
    received_at: datetime,
    new_id: NewMessageId = fresh_message_id,
) -> RecordResult:
    """Validate and normalize a ``storefront.events`` record: one Segment message, or a
    ``{"batch": [...]}`` of them. Every message is attributed to ``default_source``.

    A record that is not JSON, not an object, over the size limits, or a malformed batch
    is one rejection with index ``None``.
    """
    try:
        raw = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return RecordResult([], [(None, Rejection(INVALID_JSON, f"record is not JSON: {exc}"))])
    if not isinstance(raw, dict):
        return RecordResult(
            [], [(None, Rejection(INVALID_MESSAGE, "record must be a JSON object"))]
        )
    if "batch" in raw:
        if len(value) > MAX_BATCH_BYTES:
            too_large = Rejection(
                BATCH_TOO_LARGE, f"batch is over {MAX_BATCH_BYTES // 1024} KB of JSON"
            )
            return RecordResult([], [(None, too_large)])
        try:
            batch = parse_batch(raw, source=default_source, received_at=received_at, new_id=new_id)
        except InvalidBody as exc:
            return RecordResult([], [(None, exc.rejection)])
        return RecordResult(list(batch.accepted), list(batch.rejected))
    if len(value) > MAX_MESSAGE_BYTES:
        return RecordResult([], [(None, _TOO_LARGE)])
    outcome = _parse(
        raw,
        source=default_source,
        received_at=received_at,
        call_type=None,
        new_id=new_id,
        index=None,
    )
    if isinstance(outcome, Rejection):
        return RecordResult([], [(None, outcome)])
    return RecordResult([(None, outcome)], [])


def _check_size(raw: dict[str, Any]) -> Rejection | None:
    try:
        size = len(orjson.dumps(raw))
    except TypeError as exc:  # orjson.JSONEncodeError: only Python callers can get here
        return Rejection(INVALID_MESSAGE, f"message cannot be encoded as JSON: {exc}")
    return _TOO_LARGE if size > MAX_MESSAGE_BYTES else None


def _check_time(event: EventV1) -> Rejection | None:
    latest = event.received_at + MAX_FUTURE
    if EARLIEST_EVENT_TIME <= event.timestamp <= latest:
        return None
    sent = "" if event.sent_at is None else f", sentAt {event.sent_at.isoformat()}"
    return Rejection(
        INVALID_MESSAGE,
        f"timestamp {event.timestamp.isoformat()} (after clock-skew correction{sent}) is out "
        f"of range: event times must lie between {EARLIEST_EVENT_TIME.date().isoformat()} and "
        "one day after receipt",
    )


def _parse(
    raw: dict[str, Any],
    *,
    source: str,
    received_at: datetime,
    call_type: str | None,
    new_id: NewMessageId,
    index: int | None,
    batch_context: dict[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
) -> EventV1 | Rejection:
    problem = check_shape(raw)
    if problem is not None:
        return Rejection(INVALID_MESSAGE, problem)
    too_large = _check_size(raw)
    if too_large is not None:
        return too_large
    kind = raw.get("type")
    if call_type is None:
        model = MESSAGE_MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            if kind is None:
                return Rejection(INVALID_MESSAGE, "type is required")
            return Rejection(
                INVALID_MESSAGE, f"type must be one of {_TYPES_TEXT}, got {show(kind)}"
            )
    else:
        model = MESSAGE_MODELS.get(call_type)
        if model is None:
            raise ValueError(f"unknown call type {call_type!r}; expected one of {_TYPES_TEXT}")
        if kind is not None and kind != call_type:
            raw = {**raw, "type": call_type}
    try:
        message = model.model_validate(raw)
    except ValidationError as exc:
        return Rejection.invalid(INVALID_MESSAGE, exc)
    if isinstance(message, TrackMessage):
        problem = check_properties(message.event, message.properties)
        if problem is not None:
            return Rejection(INVALID_EVENT_PROPERTIES, problem)
    try:
        event = normalize(
            message,
            source=source,
            new_message_id=functools.partial(new_id, index),
            received_at=received_at,
            batch_context=batch_context,
            batch_sent_at=batch_sent_at,
        )
    except OverflowError:
        return Rejection(
            INVALID_MESSAGE,
            "timestamp is out of range after clock-skew correction: check timestamp and sentAt",
        )
    return _check_time(event) or event
