"""Dead letters that are also kept in PostgreSQL: ingest's every rejection (HTTP, the
``storefront.events`` consumer, and poison records of its consumer loop) passes here."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.ingest.rejected import repository
from shared.envelope import DeadLetterV1
from shared.kafka.consumer import is_transient
from shared.kafka.deadletters import DeadLetters

log = logging.getLogger(__name__)


class RecordingDeadLetters(DeadLetters):
    """Produces to ``clm.dead-letters`` as before, then stores the same letters.

    A database outage propagates like a broker failure: the request answers 503 and the
    consumer retries the batch (its rows have derived ids, so a retry adds none). A row the
    database refuses for good is logged and skipped: the letter is on Kafka already, and one
    bad row must not stall the consumer.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        service: str,
        *,
        sessions: async_sessionmaker[AsyncSession],
    ) -> None:
        super().__init__(producer, service)
        self.sessions = sessions

    async def send_many(self, letters: list[tuple[bytes | None, DeadLetterV1]]) -> None:
        await super().send_many(letters)
        try:
            async with self.sessions() as session, session.begin():
                await repository.record(session, [letter for _, letter in letters])
        except DBAPIError as exc:
            if is_transient(exc):
                raise
            log.error(
                "rejected input not stored (it is on clm.dead-letters)",
                extra={"error": type(exc.orig).__name__, "letters": len(letters)},
            )


async def prune_expired(sessions: async_sessionmaker[AsyncSession], *, days: int) -> None:
    """Delete rejected input older than ``days``."""
    deleted = await repository.prune(sessions, older_than=datetime.now(UTC) - timedelta(days=days))
    if deleted:
        log.info("pruned rejected input", extra={"deleted": deleted})
