"""The webhook body of the contract (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def webhook_body(data: Mapping[str, Any], *, created_at: datetime) -> bytes:
    """``{"type": "action.send", "timestamp": <action time>, "data": {...}}``.

    The body is the same bytes on every attempt and replay (only the signature headers
    change), so receivers that dedupe on ``webhook-id`` see one message.
    """
    return orjson.dumps(
        {"type": "action.send", "timestamp": _stamp(created_at), "data": dict(data)}
    )


def test_body(destination_id: str, *, now: datetime) -> bytes:
    """``{"type": "destination.test", ...}``: what ``POST /v1/destinations/{id}/test`` sends.
    Receivers should answer 2xx and send nothing to anyone."""
    return orjson.dumps(
        {
            "type": "destination.test",
            "timestamp": _stamp(now),
            "data": {"destination_id": destination_id, "test": True},
        }
    )
