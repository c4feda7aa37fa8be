"""Deterministic ids: the same cause always yields the same id, so replays land on the same row."""

from __future__ import annotations

import uuid

#: Namespace of every id clm derives. Never change it: stored ids depend on it.
CLM_NAMESPACE = uuid.UUID("6f1c2b1e-4d1a-5c7e-9a51-1c1a2f3e4d5b")


def derive_id(*parts: object) -> uuid.UUID:
    """uuid5 of the parts joined by an ASCII unit separator (which cannot occur in our keys)."""
    return uuid.uuid5(CLM_NAMESPACE, "\x1f".join(str(p) for p in parts))


def event_id(source: str, message_id: str) -> uuid.UUID:
    """The id of a storefront message: one per (source, messageId)."""
    return derive_id("event", source, message_id)
