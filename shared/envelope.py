"""Versioned records that travel between the services over Kafka.

Every record is JSON with a ``type`` discriminator and a ``version``; producers build the
pydantic models (validated as they are built). Consumers decode with :func:`decode_action_topic`
(``clm.actions``: an action, an action cancellation or an erasure notice)
or :func:`decode_dead_letter` into those models, or a :class:`pydantic.ValidationError`
(also for a ``type`` they do not know);
:func:`decode_event` gives an :class:`EventV1`; the trigger engine, which decodes every
``clm.events`` record on its hot path, uses :func:`decode_plain_event` instead: the same
record as plain data (:class:`Event`, ``msgspec``: a fifth of the cost), or a
:class:`msgspec.ValidationError`.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

CallType = Literal["track", "identify", "page", "screen", "alias", "group"]


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_bytes(self) -> bytes:
        return self.__pydantic_serializer__.to_json(self)


class EventV1(_Record):
    """A validated, normalized storefront message on ``clm.events`` (key = ``customer_key``)."""

    type: Literal["event"] = "event"
    version: Literal[1] = 1
    event_id: UUID = Field(description="uuid5 of (source, message_id): stable across retries")
    source: str = Field(description="the write key's source (storefront) name")
    message_id: str
    customer_key: str = Field(description="userId if present, else anonymousId")
    call: CallType = Field(description="the Segment call: track, identify, page, …")
    event: str | None = Field(default=None, description="track event name, or page/screen name")
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = Field(default=None, description="alias: the id being merged")
    group_id: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)
    traits: dict[str, Any] = Field(default_factory=dict)
    context: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime = Field(description="event time after clock-skew correction (UTC)")
    original_timestamp: datetime | None = Field(
        default=None, description="the timestamp the client sent, uncorrected"
    )
    sent_at: datetime | None = None
    received_at: datetime

    @cached_property
    def event_id_text(self) -> str:
        """``str(event_id)``, formatted once (it is a dictionary key on every hot path)."""
        return str(self.event_id)


class Event(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """:class:`EventV1` as the trigger engine reads it: the same record, as plain data.

    Field for field the same as ``EventV1`` (a test holds them together), but for
    ``event_id``, kept as its text.
    """

    type: Literal["event"] = "event"
    version: Literal[1] = 1
    event_id: str
    source: str
    message_id: str
    customer_key: str
    call: CallType
    event: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    previous_id: str | None = None
    group_id: str | None = None
    properties: dict[str, Any] = msgspec.field(default_factory=dict)
    traits: dict[str, Any] = msgspec.field(default_factory=dict)
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    timestamp: datetime
    original_timestamp: datetime | None = None
    sent_at: datetime | None = None
    received_at: datetime

    @property
    def event_id_text(self) -> str:
        return self.event_id

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self)


class ActionV1(_Record):
    """An action for the messenger on ``clm.actions`` (key = ``customer_key``).

    ``data`` is the webhook ``data`` object of the contract, ready to deliver.
    """

    type: Literal["action"] = "action"
    version: Literal[1] = 1
    action_id: str = Field(description="'act_' + uuid5 of (run, step): the webhook-id")
    customer_key: str
    channel: str
    destination: str | None = Field(default=None, description="destination id named by the step")
    data: dict[str, Any]
    created_at: datetime
    run_id: str | None = Field(
        default=None,
        description="the rule run that sent it: an ActionCancelV1 for that run cancels it "
        "(None from engines before cancellation existed)",
    )


class ActionCancelV1(_Record):
    """A run ended before all its actions were delivered: deliveries of ``run_id`` not sent yet
    are cancelled, and an action of that run that arrives later is recorded cancelled.

    Sent by the engine only for a run that emitted at least one action and then *ended early*
    (``reason``: ``exit_when``, ``audience``, ``rule_disabled``, ``rule_version_missing``,
    ``merged``), or that completed at a send and then met an ``exit_when`` event of its rule
    (reason ``exit_when``; its last send may still be waiting). Key = ``customer_key`` (the run's
    customer), so it follows the run's actions on their partition. ``cancel_id`` is derived
    from the run: a replay sends the same record again, and applying it twice changes
    nothing. An erased customer's deliveries are cancelled by :class:`ErasureV1` instead.
    """

    type: Literal["action.cancel"] = "action.cancel"
    version: Literal[1] = 1
    cancel_id: str = Field(description="'cancel_' + uuid5 of the run: the same on every replay")
    run_id: str
    customer_key: str
    rule: str = Field(description="the rule key of the run")
    reason: str = Field(
        description="why the run ended: exit_when, audience, rule_disabled, "
        "rule_version_missing, merged"
    )
    ended_at: datetime = Field(description="when the run ended (the engine's run time)")


class ErasureV1(_Record):
    """A customer was erased: consumers purge what they hold for ``customer_key``."""

    type: Literal["erasure"] = "erasure"
    version: Literal[1] = 1
    customer_key: str
    erasure_id: UUID
    requested_at: datetime


ActionTopicRecord = Annotated[ActionV1 | ActionCancelV1 | ErasureV1, Field(discriminator="type")]


class DeadLetterV1(_Record):
    """Rejected input with its reason, on ``clm.dead-letters``. Nothing is dropped silently."""

    type: Literal["dead_letter"] = "dead_letter"
    version: Literal[1] = 1
    service: str = Field(description="the service that rejected it")
    origin: str = Field(description="'http' or the Kafka topic the record came from")
    source: str | None = Field(default=None, description="write key source, when known")
    partition: int | None = None
    offset: int | None = None
    index: int | None = Field(default=None, description="index within a batch, when any")
    code: str
    reason: str
    errors: list[str] = Field(
        default_factory=list, description="every problem found, one sentence each (additive)"
    )
    payload: str = Field(description="the rejected input as received (UTF-8, lossy)")
    rejected_at: datetime


_EVENT = TypeAdapter(EventV1)
_PLAIN_EVENT = msgspec.json.Decoder(Event)
_ACTION_TOPIC: TypeAdapter[ActionV1 | ActionCancelV1 | ErasureV1] = TypeAdapter(ActionTopicRecord)
_DEAD_LETTER = TypeAdapter(DeadLetterV1)


def decode_event(raw: bytes) -> EventV1:
    return _EVENT.validate_json(raw)


def decode_plain_event(raw: bytes) -> Event:
    """A ``clm.events`` record as plain data; :class:`msgspec.ValidationError` when it is not
    one."""
    return _PLAIN_EVENT.decode(raw)


def decode_action_topic(raw: bytes) -> ActionV1 | ActionCancelV1 | ErasureV1:
    return _ACTION_TOPIC.validate_json(raw)


def decode_dead_letter(raw: bytes) -> DeadLetterV1:
    return _DEAD_LETTER.validate_json(raw)
