"""Alembic environment of the messenger service (its own schema and version table)."""

from services.messenger.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
