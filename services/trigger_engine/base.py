"""The declarative base of the trigger_engine's tables (schema ``engine``)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import metadata_for

SCHEMA = "engine"


class Base(DeclarativeBase):
    metadata = metadata_for(SCHEMA)
