"""Pending timers. A row exists while the timer is pending; firing deletes it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class TimerRow(Base):
    """``claimed_by``/``claimed_until``: a lease, so a dead worker's claims are taken again.

    ``release_at``: the timer fires once the partitions' watermark has passed it (its due
    time, or a grace after its late trigger arrived; see ``partitions/watermark.py``).
    """

    __tablename__ = "timers"

    timer_id: Mapped[str] = mapped_column(Text, primary_key=True)
    customer_key: Mapped[str] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(Text)
    rule_key: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    release_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    claimed_by: Mapped[str | None] = mapped_column(Text)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_timers_release_at", "release_at"),)
