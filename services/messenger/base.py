"""The declarative base of the messenger's tables (schema ``messenger``).

Table modules import :class:`Base` from here; :mod:`services.messenger.models` imports every
table module, so importing it gives the complete metadata (Alembic, the migration check).
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase

from shared.db import metadata_for

SCHEMA = "messenger"


class Base(DeclarativeBase):
    metadata = metadata_for(SCHEMA)
