"""One row per consumed topic partition: its watermark."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class PartitionRow(Base):
    """``watermark``: every record appended to the partition before this instant has been
    folded and committed (None until the first consumer established it; see
    :mod:`services.trigger_engine.partitions.watermark`). It only moves forward."""

    __tablename__ = "partitions"

    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    watermark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
