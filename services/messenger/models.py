"""The messenger service's tables (schema ``messenger``)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import metadata_for

SCHEMA = "messenger"


class Base(DeclarativeBase):
    metadata = metadata_for(SCHEMA)
