"""What counts as "PostgreSQL or Kafka is unreachable right now".

Such a failure is transient: the same work succeeds once the dependency is back. Consumer
loops and workers retry it with backoff instead of dead-lettering; the HTTP layer answers
it with ``503`` and ``Retry-After`` instead of ``500`` (``shared.errors``).
"""

from __future__ import annotations

import asyncio
from typing import Final

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

TRANSIENT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    OSError,  # connection refused or reset, a socket that vanished
    asyncio.TimeoutError,  # a connect or command timeout
    KafkaConnectionError,
    KafkaTimeoutError,
    OperationalError,
    InterfaceError,
    PoolTimeout,  # no pooled connection came free in time
)

#: SQLSTATE classes of a server going away or not accepting connections yet: connection
#: exceptions (08…), and "operator intervention" (57P01 admin shutdown, 57P02 crash
#: shutdown, 57P03 cannot connect now: starting up or shutting down).
_OUTAGE_SQLSTATES: Final = ("08", "57P01", "57P02", "57P03")


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` means a dependency is unreachable, not that the work is wrong."""
    if isinstance(exc, TRANSIENT_ERRORS):
        return True
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        state = getattr(exc.orig, "sqlstate", None)
        return isinstance(state, str) and state.startswith(_OUTAGE_SQLSTATES)
    state = getattr(exc, "sqlstate", None)  # a raw asyncpg error
    return isinstance(state, str) and state.startswith(_OUTAGE_SQLSTATES)
