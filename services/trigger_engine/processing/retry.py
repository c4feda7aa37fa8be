"""Which failures mean "redo the transaction now" (as opposed to transient or poison)."""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError

from services.trigger_engine.processing.loader import ConcurrentChange

#: Deadlock detected, serialization failure: PostgreSQL rolled the transaction back.
RETRYABLE_SQLSTATES: Final = frozenset({"40P01", "40001"})
MAX_ATTEMPTS: Final = 5


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, ConcurrentChange):
        return True
    if isinstance(exc, DBAPIError):
        return getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES
    return False
