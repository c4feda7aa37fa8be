"""The ``deliveries``, ``delivery_attempts`` and ``cancelled_runs`` tables.

Pending retries live here (``next_attempt_at``), claimed with ``FOR UPDATE SKIP LOCKED`` and a
lease (``claim_token``, ``claimed_until``), so a restart loses none and sends none twice.
``cancelled_runs`` remembers every run the engine cancelled (``ActionCancelV1``), so that an
action of such a run is cancelled whenever it arrives and at every attempt.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.messenger.base import Base


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    action_id: Mapped[str] = mapped_column(String(200), unique=True)
    customer_key: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(20))
    destination_id: Mapped[str | None] = mapped_column(String(200))
    destination_named: Mapped[bool] = mapped_column(
        doc="the action named its destination (else: the channel's default)"
    )
    rule: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(
        Text, doc="the engine's run (ActionV1.run_id); null for actions of older engines"
    )
    template: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONB, doc="webhook data; erasable")
    action_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(20))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    round: Mapped[int] = mapped_column(Integer, default=1, doc="1 + replays")
    round_attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claim_token: Mapped[uuid.UUID | None] = mapped_column()
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_status: Mapped[str | None] = mapped_column(String(20))
    provider_status_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    replayed_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        doc="the last replay: a run cancellation received before it no longer applies",
    )

    __table_args__ = (
        Index(
            "ix_deliveries_run_id",
            "run_id",
            postgresql_where=text("run_id IS NOT NULL"),
        ),
        Index(
            "ix_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status IN ('pending', 'retrying')"),
        ),
        Index("ix_deliveries_customer_key", "customer_key"),
        Index("ix_deliveries_status_created_at", "status", "created_at"),
        Index("ix_deliveries_destination_id_created_at", "destination_id", "created_at"),
        Index("ix_deliveries_created_at", "created_at"),
    )


class DeliveryAttempt(Base):
    """One HTTP attempt (append-only; erasure only blanks ``response_body``)."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer, doc="1-based over the delivery's life")
    round: Mapped[int] = mapped_column(Integer)
    destination_id: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latency_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(20))
    error: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_delivery_attempts_delivery_id", "delivery_id"),
        Index("ix_delivery_attempts_started_at", "started_at"),
    )


class CancelledRun(Base):
    """A run that ended before its actions were all delivered (one row per run: a cancellation
    received again changes nothing). Kept like the deliveries it cancelled."""

    __tablename__ = "cancelled_runs"

    run_id: Mapped[str] = mapped_column(Text, primary_key=True)
    cancel_id: Mapped[str] = mapped_column(Text)
    customer_key: Mapped[str] = mapped_column(Text)
    rule: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, doc="exit_when, audience, rule_disabled, …")
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), doc="the engine's")
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
