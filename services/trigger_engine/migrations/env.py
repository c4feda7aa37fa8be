"""Alembic environment of the trigger_engine service (its own schema and version table)."""

from services.trigger_engine.models import Base
from shared.migrations import run_env

run_env(Base.metadata)
