"""The ``destinations`` table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from services.messenger.base import Base


class Destination(Base):
    """A webhook receiver; at most one default per channel. Its ``whsec_`` secret is needed
    to sign, so it cannot be hashed: it is stored encrypted (``destinations/secrets.py``),
    never returned after creation and never logged."""

    __tablename__ = "destinations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(Text)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    rate_limit_per_second: Mapped[float] = mapped_column(Float)
    max_concurrency: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    is_default: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "uq_destinations_default_channel",
            "channel",
            unique=True,
            postgresql_where=text("is_default"),
        ),
    )

    def __repr__(self) -> str:  # never the secret
        return f"Destination(id={self.id!r}, channel={self.channel!r}, enabled={self.enabled})"
