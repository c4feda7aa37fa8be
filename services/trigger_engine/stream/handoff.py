"""The hand-off topic: work for a customer that another partition's owner must do.

Every customer has one owner: the engine instance that owns the ``clm.events`` partition of
its key. When an event needs a customer of another partition, it is not touched under a lock
from here: a record goes to the hand-off topic (same partition count as ``clm.events``, keyed
by the customer that must act, so it lands on that customer's partition and owner):

- :class:`Forward`: an event keyed by an anonymous id that was merged into a known customer
  of another partition; the known customer's owner folds it;
- :class:`MergeRequest`: fold ``source`` (a customer of the receiving partition) into
  ``target``; the receiver links ``source`` to ``target`` and sends its state on;
- :class:`StateTransfer`: the state of a merged-away customer, to merge into ``target``.

The topic is internal to the engine (like a Kafka Streams repartition topic). A record may
arrive twice (a producer retry, or a replay after a crash): a forwarded event is recognised by
its id, a merge request finds ``source`` linked already, and a transfer by ``state.merged``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec
from aiokafka.partitioner import murmur2

from services.trigger_engine.core.state import CustomerState
from shared.envelope import Event

TOPIC: Final = "clm.engine.handoff"


class Forward(msgspec.Struct, tag="forward", frozen=True):
    target: str
    event: Event
    #: where the event was read: (clm.events partition, offset), for its event log row
    partition: int
    offset: int


class MergeRequest(msgspec.Struct, tag="merge", frozen=True):
    source: str
    target: str
    #: when the identifying event was received: the instant the merge happens at (so a
    #: replay merges alike, with the same effect ids)
    at: datetime
    #: an alias merges whatever ``source`` resolves to; an identify only an unlinked ``source``
    follow: bool = False


class StateTransfer(msgspec.Struct, tag="transfer", frozen=True):
    source: str
    target: str
    state: CustomerState
    #: as :attr:`MergeRequest.at`
    at: datetime


Record = Forward | MergeRequest | StateTransfer

_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(Record)


def encode(record: Record) -> bytes:
    return _ENCODER.encode(record)


def decode(raw: bytes) -> Record:
    return _DECODER.decode(raw)


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as producers do)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions
