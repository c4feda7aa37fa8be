"""Lifecycle model versions (the newest is current; none stored = the contract's default) and
the re-evaluation passes that move existing customers to a new version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import Base


class LifecycleVersionRow(Base):
    __tablename__ = "lifecycle_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    model: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LifecyclePassRow(Base):
    """A re-evaluation of every customer under one lifecycle model version (see
    :mod:`~services.trigger_engine.lifecycle.reevaluation`): how far it got, what it did.

    Customers are walked in ``customer_key`` order; ``cursor`` is the last key done, moved
    in the same transaction as the customers it covers, so a pass resumes where it stopped.
    """

    __tablename__ = "lifecycle_passes"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cursor: Mapped[str | None] = mapped_column(Text)
    #: customers stored when the pass started (an estimate of the work: customers come and go)
    total: Mapped[int] = mapped_column(Integer)
    customers: Mapped[int] = mapped_column(Integer)
    transitions: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
