"""The webhook body of the contract (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson


def webhook_body(data: Mapping[str, Any], *, created_at: datetime) -> bytes:
    """``{"type": "action.send", "timestamp": <action time>, "data": {...}}``.

    The body is the same bytes on every attempt and replay (only the signature headers
    change), so receivers that dedupe on ``webhook-id`` see one message.
    """
    stamp = created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return orjson.dumps({"type": "action.send", "timestamp": stamp, "data": dict(data)})
