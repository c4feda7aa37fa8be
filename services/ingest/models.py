"""The ingest service's tables (schema ``ingest``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, String, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import metadata_for

SCHEMA = "ingest"


class Base(DeclarativeBase):
    metadata = metadata_for(SCHEMA)


class WriteKey(Base):
    """A storefront's write key. Only its SHA-256 is stored; the key is shown once."""

    __tablename__ = "write_keys"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    source: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SeenMessage(Base):
    """Accepted ``messageId``s per source, for dedupe (pruned after the dedupe window)."""

    __tablename__ = "seen_messages"

    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    message_id: Mapped[str] = mapped_column(Text, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_seen_messages_received_at", "received_at"),)
