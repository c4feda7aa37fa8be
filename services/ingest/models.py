"""The ingest service's tables (schema ``ingest``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
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


class RejectedInput(Base):
    """A message ingest refused, as it was dead-lettered: kept for the retention window
    (``CLM_REJECTED_RETENTION_DAYS``) so operators can read it without Kafka tooling."""

    __tablename__ = "rejected"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    rejected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    source: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(Text)
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)
    index: Mapped[int | None] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    errors: Mapped[list[str]] = mapped_column(JSONB)
    payload: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_rejected_rejected_at", "rejected_at"),
        Index("ix_rejected_source_rejected_at", "source", "rejected_at"),
    )


class JournalEntry(Base):
    """An accepted event kept until the engine has consumed it (``CLM_EVENT_JOURNAL``), with
    the partition and offset the broker gave it; both NULL while it waits to be published
    again after a broker loss (``clm/recovery.py``)."""

    __tablename__ = "journal"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_journal_partition_offset", "partition", "offset"),)
