"""Deterministic ids: the same cause always yields the same id, so replays land on the same row."""

from __future__ import annotations

import hashlib
import uuid

#: Namespace of every id clm derives. Never change it: stored ids depend on it.
CLM_NAMESPACE = uuid.UUID("6f1c2b1e-4d1a-5c7e-9a51-1c1a2f3e4d5b")


def derive_id(*parts: object) -> uuid.UUID:
    """uuid5 of the parts joined by an ASCII unit separator (which cannot occur in our keys)."""
    return uuid.uuid5(CLM_NAMESPACE, "\x1f".join(str(p) for p in parts))


def derive_text(*parts: object) -> str:
    """``str(derive_id(*parts))``, without building the UUID object (a hot path)."""
    name = "\x1f".join(str(p) for p in parts)
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_NAMESPACE_BYTES = CLM_NAMESPACE.bytes


def event_id(source: str, message_id: str) -> uuid.UUID:
    """The id of a storefront message: one per (source, messageId)."""
    return derive_id("event", source, message_id)
