"""Outbox rows: actions, run cancellations and erasure notices (``kind``: ``action``,
``cancel``, ``erasure``), committed before they are published.

Published rows are kept (``published_at`` set) for ``CLM_OUTBOX_RETENTION_DAYS``: they are
the customer's action log that the timeline shows; the retention job deletes them after that
(see ``retention.py``). Erasure deletes a customer's rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class OutboxRow(Base):
    __tablename__ = "outbox"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    id: Mapped[str] = mapped_column(Text, unique=True)
    customer_key: Mapped[str] = mapped_column(Text, index=True)
    #: the clm.events partition whose owner wrote (and publishes) the row
    partition: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_outbox_unpublished",
            "partition",
            "seq",
            postgresql_where=text("published_at IS NULL"),
        ),
        # the retention job's: published rows by age
        Index(
            "ix_outbox_published_at",
            "published_at",
            postgresql_where=text("published_at IS NOT NULL"),
        ),
    )
