"""Copies and JSON views of the core's plain data (``msgspec`` structs).

Deep copies go through MessagePack: for these small trees of structs, lists and dicts it is
the fastest way to get an independent copy, and exactly what storing and reading back would
give (datetimes come back in UTC).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

ENCODER = msgspec.msgpack.Encoder()
_DECODERS: dict[type[Any], msgspec.msgpack.Decoder[Any]] = {}


def deep_copy(value: T) -> T:
    """An independent copy of a struct and everything it holds."""
    kind = type(value)
    decoder = _DECODERS.get(kind)
    if decoder is None:
        decoder = _DECODERS[kind] = msgspec.msgpack.Decoder(kind)
    copied: T = decoder.decode(ENCODER.encode(value))
    return copied


_JSON_ENCODER = msgspec.json.Encoder()


def json_view(value: Any) -> Any:
    """``value`` as its JSON reads back: what conditions and webhooks see (datetimes as ISO
    8601 text, keys as strings, tuples as lists, non-finite floats as null)."""
    return msgspec.json.decode(_JSON_ENCODER.encode(value))
