"""Opaque keyset cursors: ``(created_at, id)`` of the last item of a page."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from shared.errors import BadRequest


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    raw = f"{created_at.isoformat()}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, item_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return created_at, uuid.UUID(item_id)
    except ValueError:
        raise BadRequest("invalid cursor", code="invalid_cursor") from None
