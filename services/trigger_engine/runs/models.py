"""Append-only run records, one per (run, kind, step); the source of rule stats."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class RunEventRow(Base):
    """``kind``: started, sent, held_out, skipped, deferred, exited, completed, converted."""

    __tablename__ = "run_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(Text)
    customer_key: Mapped[str] = mapped_column(Text)
    rule_key: Mapped[str] = mapped_column(Text)
    rule_version: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(Text)
    holdout: Mapped[bool] = mapped_column(Boolean)
    step: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_run_events_rule_key_kind", "rule_key", "kind"),
        Index("ix_run_events_customer_key", "customer_key"),
    )
