"""Customer state, identity links and stage transitions."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, Integer, LargeBinary, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class Customer(Base):
    """The core's ``CustomerState`` as MessagePack (read back whole, never queried inside),
    plus columns copied out of it for queries.

    ``partition``: the clm.events partition whose owner writes the row; ``next_release_at``:
    when the earliest of its timers may fire (an owner reads them when assigned the
    partition). Both are NULL on rows stored before they existed, until the owner adopts
    the row.
    """

    __tablename__ = "customers"

    customer_key: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int | None] = mapped_column(Integer)
    next_release_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    stage: Mapped[str | None] = mapped_column(Text)
    stage_entered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    user_id: Mapped[str | None] = mapped_column(Text)
    #: from the traits, for searching: the email in lower case, the phone as given
    email: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    orders: Mapped[int] = mapped_column(Integer)
    revenue: Mapped[float] = mapped_column(Float)
    first_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_order_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_customers_stage", "stage"),
        Index("ix_customers_partition", "partition", "customer_key"),
        Index(
            "ix_customers_email",
            text("email text_pattern_ops"),
            postgresql_where=text("email IS NOT NULL"),
        ),
        Index(
            "ix_customers_phone",
            text("phone text_pattern_ops"),
            postgresql_where=text("phone IS NOT NULL"),
        ),
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


class ErasureRow(Base):
    """An erasure request; the customer's owner carries it out (``done_at``, ``erased``)."""

    __tablename__ = "erasures"

    erasure_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    customer_key: Mapped[str] = mapped_column(Text)
    partition: Mapped[int] = mapped_column(Integer)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    erased: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        Index("ix_erasures_pending", "partition", postgresql_where=text("done_at IS NULL")),
    )


class ConfigRevisionRow(Base):
    """One row: the engine configuration's revision (see ``revision.py``)."""

    __tablename__ = "config_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)
