"""One row per consumed topic partition: its owner's checkpoint; the hand-off journal."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Identity, Index, Integer, LargeBinary, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class PartitionRow(Base):
    """A clm.events partition and its owner's last checkpoint.

    ``watermark``: every record appended to the partition (and to its hand-off partition)
    before this instant has been folded and checkpointed (None until the first owner
    established it; see :mod:`services.trigger_engine.partitions.watermark`).
    ``generation`` goes up each time an owner claims the partition; a checkpoint carrying
    an older one is refused. ``events_offset``/``handoff_offset``: the next offsets to
    consume of clm.events and of the hand-off topic. ``pass_version``/``pass_cursor``: the
    lifecycle pass of the partition (the last customer key done; NULL once finished).
    """

    __tablename__ = "partitions"

    topic: Mapped[str] = mapped_column(Text, primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    watermark: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    generation: Mapped[int] = mapped_column(BigInteger, server_default="0")
    owner: Mapped[str | None] = mapped_column(Text)
    events_offset: Mapped[int | None] = mapped_column(BigInteger)
    handoff_offset: Mapped[int | None] = mapped_column(BigInteger)
    pass_version: Mapped[int | None] = mapped_column(Integer)
    pass_cursor: Mapped[str | None] = mapped_column(Text)


class HandoffJournalRow(Base):
    """A hand-off record the broker acknowledged, kept until its partition has consumed it
    (the checkpoints delete it then), with where the broker put it; both NULL while it
    waits to be published again after a broker loss (``clm/recovery.py``)."""

    __tablename__ = "handoff_journal"

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False), primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_handoff_journal_partition_offset", "partition", "offset"),)
