"""The event store table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base

#: Events the lifecycle metrics read; a partial index keeps those queries cheap without
#: indexing every page view.
METRIC_EVENTS: Final = ("Order Completed", "Order Refunded", "Order Cancelled", "Survey Responded")


class StoredEvent(Base):
    """One commerce event (``EventV1``: orders, refunds, cancellations, surveys), stored once
    per ``event_id``; the lifecycle metrics read them. Rows stored before
    ``engine.event_log`` existed hold events of every kind.

    ``customer_key`` is the resolved customer: an anonymous id already merged into a known
    customer stores under the known key, and a merge re-keys the anonymous rows.
    """

    __tablename__ = "events"

    event_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_key: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(Text)
    call: Mapped[str] = mapped_column(Text)
    event: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_events_customer_key_timestamp", "customer_key", "timestamp"),
        # the retention job finds expired events by when they arrived (see retention.py)
        Index("ix_events_received_at", "received_at"),
        Index(
            "ix_events_metric_timestamp",
            "timestamp",
            postgresql_where=text(
                "event IN ('Order Completed', 'Order Refunded', 'Order Cancelled', "
                "'Survey Responded')"
            ),
        ),
    )


class EventLogRow(Base):
    """The other events of one customer, one row per owner checkpoint: the records as a JSON
    array (``records``), keyed by the clm.events partition and offset of its first one."""

    __tablename__ = "event_log"

    customer_key: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    offset: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    count: Mapped[int] = mapped_column(Integer)
    records: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        Index("ix_event_log_last_at", "last_at", postgresql_using="brin"),
        Index("ix_event_log_received_at", "received_at", postgresql_using="brin"),
    )
