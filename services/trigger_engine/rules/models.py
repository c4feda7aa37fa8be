"""Rules and their immutable versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKeyConstraint, Integer, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.trigger_engine.base import SCHEMA, Base


class RuleRow(Base):
    """A rule key and the version that is current. ``deleted_at`` set = deleted (its versions
    stay, for runs in flight and stats)."""

    __tablename__ = "rules"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    current_version: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class RuleVersionRow(Base):
    """One immutable version of a rule, as validated (the core's ``Rule`` in JSON)."""

    __tablename__ = "rule_versions"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (ForeignKeyConstraint(["key"], [f"{SCHEMA}.rules.key"]),)
