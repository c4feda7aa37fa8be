"""Customer state, identity links and stage transitions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class Customer(Base):
    """The core's ``CustomerState`` as UTF-8 JSON bytes (read back whole, never queried
    inside), plus columns copied out of it for queries."""

    __tablename__ = "customers"

    customer_key: Mapped[str] = mapped_column(Text, primary_key=True)
    state: Mapped[bytes] = mapped_column(LargeBinary)
    stage: Mapped[str | None] = mapped_column(Text)
    stage_entered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[str | None] = mapped_column(Text)
    orders: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[float] = mapped_column(Float)
    first_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_customers_stage", "stage"),
        {"postgresql_with": {"fillfactor": 70}},
    )


class IdentityLink(Base):
    """An anonymous (or aliased) id merged into a customer; later events for it go there."""

    __tablename__ = "identity_links"

    anonymous_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_key: Mapped[str] = mapped_column(Text, index=True)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StageTransitionRow(Base):
    """One row of a customer's stage history (id derived from its cause: replays are no-ops)."""

    __tablename__ = "stage_transitions"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_key: Mapped[str] = mapped_column(Text)
    from_stage: Mapped[str | None] = mapped_column(Text)
    to_stage: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    cause: Mapped[str] = mapped_column(Text)
    cause_event: Mapped[str | None] = mapped_column(Text)
    cause_message_id: Mapped[str | None] = mapped_column(Text)
    reactivated: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_stage_transitions_customer_key_at", "customer_key", "at"),
        Index("ix_stage_transitions_at", "at"),
    )
