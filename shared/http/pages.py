"""The one list envelope every list endpoint answers with: ``{"items": [...], "next_cursor"}``.

``next_cursor`` is ``null`` on the last page; otherwise pass it back as ``cursor`` to get the
next one. Lists short enough to answer whole (rules, destinations, templates, write keys)
answer one page with ``next_cursor: null``, so they can be paged later without another
change of shape.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

from shared.errors import BadRequest

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(
        default=None, description="pass as `cursor` for the next page; null on the last page"
    )


def whole(items: list[T]) -> Page[T]:
    """A list answered in one page."""
    return Page[T](items=items, next_cursor=None)


def encode_text_cursor(value: str) -> str:
    """An opaque cursor for a keyset on one text column."""
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def decode_text_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("invalid cursor", code="invalid_cursor") from None


def encode_cursor(created_at: datetime, item_id: uuid.UUID) -> str:
    """An opaque cursor for a keyset on ``(time, id)``, newest first."""
    return encode_text_cursor(f"{created_at.isoformat()}|{item_id}")


def decode_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    raw = decode_text_cursor(cursor)
    if raw is None:
        return None
    try:
        stamp, item_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive time")
        return created_at, uuid.UUID(item_id)
    except ValueError:
        raise BadRequest("invalid cursor", code="invalid_cursor") from None
