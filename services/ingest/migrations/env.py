"""Alembic environment of the ingest service (its own schema and version table)."""

from services.ingest.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
