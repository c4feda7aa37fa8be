"""Send rejected input to ``clm.dead-letters`` with its reason."""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from shared import topics
from shared.envelope import DeadLetterV1

DEAD_LETTERS = Counter(
    "clm_dead_letters_total", "Inputs rejected to clm.dead-letters", ["service", "origin", "code"]
)

MAX_PAYLOAD_CHARS = 64 * 1024


def _text(payload: bytes | str | None) -> str:
    if payload is None:
        return ""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", errors="replace")
    return payload[:MAX_PAYLOAD_CHARS]


class DeadLetters:
    def __init__(self, producer: AIOKafkaProducer, service: str) -> None:
        self.producer = producer
        self.service = service

    def build(
        self,
        *,
        origin: str,
        code: str,
        reason: str,
        payload: bytes | str | None,
        source: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        index: int | None = None,
        key: bytes | None = None,
        errors: tuple[str, ...] | list[str] = (),
    ) -> tuple[bytes | None, DeadLetterV1]:
        record = DeadLetterV1(
            service=self.service,
            origin=origin,
            source=source,
            partition=partition,
            offset=offset,
            index=index,
            code=code,
            reason=reason,
            errors=list(errors) or [reason],
            payload=_text(payload),
            rejected_at=datetime.now(UTC),
        )
        return key, record

    async def send_many(self, letters: list[tuple[bytes | None, DeadLetterV1]]) -> None:
        """Produce every letter and wait until the broker acknowledged all of them."""
        futures = [
            await self.producer.send(topics.DEAD_LETTERS, letter.to_bytes(), key=key)
            for key, letter in letters
        ]
        for future, (_, letter) in zip(futures, letters, strict=True):
            await future
            DEAD_LETTERS.labels(self.service, letter.origin, letter.code).inc()

    async def send(self, **kwargs: object) -> None:
        await self.send_many([self.build(**kwargs)])  # type: ignore[arg-type]
