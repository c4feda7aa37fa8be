"""The Segment Tracking API messages, as pydantic v2 models.

One model per call (track, identify, page, screen, alias, group) plus :class:`BatchBody`.
Field names are snake_case with Segment's camelCase as the alias, so
``TrackMessage.model_validate(body)`` takes the JSON as clients send it.

What is accepted, and how:

- ``userId``, ``anonymousId``, ``previousId``, ``groupId`` and ``messageId`` may be strings
  or numbers (Segment allows numeric ids); numbers become strings (``42`` → ``"42"``). An
  empty or blank string counts as absent, as the Segment libraries treat it. An id is at most
  :data:`MAX_ID_LENGTH` characters, as Segment allows.
- Dates (``timestamp``, ``sentAt``, ``originalTimestamp``) are ISO 8601 strings; an offset is
  honoured, a date without one is UTC; every parsed date is UTC-aware.
- ``context``, ``properties``, ``traits``, ``integrations``: JSON objects; ``null`` is ``{}``.
- Unknown top-level fields are accepted and ignored (they never reach the envelope).
- ``messageId``: Segment clients always send one. A message without one gets a fresh id when
  it is normalized (``services.ingest.tracking.validate``), as Segment does: two identical
  messages without ids are two events, never duplicates of each other.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator

from services.ingest.tracking.errors import field_error, show
from shared.envelope import CallType

CALL_TYPES: Final[tuple[CallType, ...]] = ("track", "identify", "page", "screen", "alias", "group")

#: The longest id (``userId``, ``messageId``, …) accepted, as in Segment's Tracking API.
MAX_ID_LENGTH: Final = 100


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value.tzinfo is UTC:
        return value
    return value.astimezone(UTC)


def _segment_id(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value if value and not value.isspace() else None
    elif isinstance(value, bool):
        raise field_error("must be a string or number, got {got}", got=show(value))
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value):
        text = str(int(value)) if value.is_integer() else repr(value)
    else:
        raise field_error("must be a string or number, got {got}", got=show(value))
    if text is not None and len(text) > MAX_ID_LENGTH:
        raise field_error(
            "must be at most {max} characters, got {length}", max=MAX_ID_LENGTH, length=len(text)
        )
    return text


def _timestamp(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except (ValueError, OverflowError):  # 9999-12-31T23:59:59-05:00 overflows in UTC
            pass
    elif isinstance(value, datetime):  # Python callers
        try:
            return as_utc(value)
        except OverflowError:
            pass
    raise field_error("is not an ISO 8601 date: {got}", got=show(value))


def _json_object(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value  # JSON objects have string keys; no copy on the hot path
    raise field_error("must be an object, got {got}", got=show(value))


def _optional_string(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise field_error("must be a string, got {got}", got=show(value))


def _non_empty_string(value: object) -> str:
    if isinstance(value, str) and value and not value.isspace():
        return value
    raise field_error("must be a non-empty string, got {got}", got=show(value))


SegmentId = Annotated[
    str | None, PlainValidator(_segment_id, json_schema_input_type=str | float | None)
]
Timestamp = Annotated[
    datetime | None, PlainValidator(_timestamp, json_schema_input_type=datetime | None)
]
JsonObject = Annotated[
    dict[str, Any], PlainValidator(_json_object, json_schema_input_type=dict[str, Any] | None)
]
OptionalString = Annotated[
    str | None, PlainValidator(_optional_string, json_schema_input_type=str | None)
]
NonEmptyString = Annotated[
    str,
    PlainValidator(
        _non_empty_string,
        json_schema_input_type=Annotated[str, Field(min_length=1, pattern=r"\S")],
    ),
]


class SegmentMessage(BaseModel):
    """Fields every Tracking API call has."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    call: ClassVar[CallType]

    message_id: SegmentId = Field(default=None, alias="messageId")
    user_id: SegmentId = Field(default=None, alias="userId")
    anonymous_id: SegmentId = Field(default=None, alias="anonymousId")
    timestamp: Timestamp = None
    sent_at: Timestamp = Field(default=None, alias="sentAt")
    original_timestamp: Timestamp = Field(default=None, alias="originalTimestamp")
    context: JsonObject = Field(default_factory=dict)
    integrations: JsonObject = Field(default_factory=dict)
    write_key: OptionalString = Field(default=None, alias="writeKey")

    @model_validator(mode="after")
    def _check_ids(self) -> Self:
        self._require_customer()
        return self

    def _require_customer(self) -> None:
        if self.user_id is None and self.anonymous_id is None:
            raise field_error("userId or anonymousId is required")

    @property
    def customer_key(self) -> str:
        """``userId`` if present, else ``anonymousId``."""
        key = self.user_id if self.user_id is not None else self.anonymous_id
        assert key is not None  # guaranteed by validation
        return key


class TrackMessage(SegmentMessage):
    call: ClassVar[CallType] = "track"
    type: Literal["track"] = "track"
    event: NonEmptyString
    properties: JsonObject = Field(default_factory=dict)


class IdentifyMessage(SegmentMessage):
    call: ClassVar[CallType] = "identify"
    type: Literal["identify"] = "identify"
    traits: JsonObject = Field(default_factory=dict)


class PageMessage(SegmentMessage):
    call: ClassVar[CallType] = "page"
    type: Literal["page"] = "page"
    name: OptionalString = None
    category: OptionalString = None
    properties: JsonObject = Field(default_factory=dict)


class ScreenMessage(SegmentMessage):
    call: ClassVar[CallType] = "screen"
    type: Literal["screen"] = "screen"
    name: OptionalString = None
    category: OptionalString = None
    properties: JsonObject = Field(default_factory=dict)


class AliasMessage(SegmentMessage):
    """``userId`` is the new id, ``previousId`` the one it replaces; both required."""

    call: ClassVar[CallType] = "alias"
    type: Literal["alias"] = "alias"
    previous_id: SegmentId = Field(default=None, alias="previousId")

    @model_validator(mode="after")
    def _check_ids(self) -> Self:
        if self.user_id is None:
            raise field_error("userId is required")
        if self.previous_id is None:
            raise field_error("previousId is required")
        return self


class GroupMessage(SegmentMessage):
    call: ClassVar[CallType] = "group"
    type: Literal["group"] = "group"
    group_id: SegmentId = Field(default=None, alias="groupId")
    traits: JsonObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_ids(self) -> Self:
        self._require_customer()
        if self.group_id is None:
            raise field_error("groupId is required")
        return self


AnyMessage = (
    TrackMessage | IdentifyMessage | PageMessage | ScreenMessage | AliasMessage | GroupMessage
)
#: For OpenAPI documents: a batch member, discriminated by ``type``.
Message = Annotated[AnyMessage, Field(discriminator="type")]

MESSAGE_MODELS: Final[dict[str, type[AnyMessage]]] = {
    "track": TrackMessage,
    "identify": IdentifyMessage,
    "page": PageMessage,
    "screen": ScreenMessage,
    "alias": AliasMessage,
    "group": GroupMessage,
}


class BatchBody(BaseModel):
    """``POST /v1/batch``: messages, plus a ``context`` merged into each message's context
    and a ``sentAt`` used by members that have none of their own.

    Members stay raw here: each is validated on its own, so one bad member rejects only itself.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    batch: list[Any]
    context: JsonObject = Field(default_factory=dict)
    sent_at: Timestamp = Field(default=None, alias="sentAt")
    write_key: OptionalString = Field(default=None, alias="writeKey")
    integrations: JsonObject = Field(default_factory=dict)
