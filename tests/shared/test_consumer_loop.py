"""The shared consumer loop on the real broker: poison isolation, transient retry, commits."""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from shared import topics
from shared.envelope import DeadLetterV1, decode_dead_letter
from shared.kafka.admin import TopicConfig, ensure_topics
from shared.kafka.consumer import ConsumerLoop, Decoded, PoisonRecord, create_consumer
from shared.kafka.deadletters import DeadLetters
from tests.support.kafka import collect
from tests.support.services import Infra


async def _topic_with(infra: Infra, values: list[bytes]) -> str:
    topic = f"test.loop.{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.bootstrap, TopicConfig(partitions=1), names=(topic,))
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await producer.start()
    try:  # one producer batch: the first fetch brings them all
        await asyncio.gather(*[await producer.send(topic, v, key=b"k") for v in values])
    finally:
        await producer.stop()
    return topic


class RecordingDeadLetters(DeadLetters):
    """The real dead letters, which also remember every letter sent (to count repeats)."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        super().__init__(producer, "test")
        self.sent: list[DeadLetterV1] = []

    async def send_many(self, letters: list[tuple[bytes | None, DeadLetterV1]]) -> None:
        await super().send_many(letters)
        self.sent.extend(letter for _, letter in letters)


class Decoder:
    """Decodes like a real topic's decoder, counting the calls per record value."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    def __call__(self, record: object) -> str:
        value: bytes = record.value  # type: ignore[attr-defined]
        self.calls[value.decode()] += 1
        if value == b"undecodable":
            raise PoisonRecord("bad_shape", "not a record of this topic")
        return value.decode()


async def _run(
    infra: Infra,
    topic: str,
    group: str,
    handler: object,
    *,
    max_records: int = 500,
    fill_ms: int = 0,
    on_fetch: Callable[[list[str]], None] | None = None,
    decoder: Decoder | None = None,
    letters: list[DeadLetterV1] | None = None,
) -> tuple[int, int | None]:
    consumer = create_consumer(
        infra.bootstrap, topic, group_id=group, client_id="test", session_timeout_ms=2000
    )
    if on_fetch is not None:
        getmany = consumer.getmany

        async def observed(*args: object, **kwargs: object) -> Any:
            fetched = await getmany(*args, **kwargs)
            on_fetch([r.value.decode() for part in fetched.values() for r in part])
            return fetched

        consumer.getmany = observed
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    try:
        dead_letters = RecordingDeadLetters(producer)
        loop: ConsumerLoop[str] = ConsumerLoop(
            consumer,
            group=group,
            decode=decoder or Decoder(),
            handler=handler,  # type: ignore[arg-type]
            dead_letters=dead_letters,
            max_records=max_records,
            fill_ms=fill_ms,
            max_backoff=0.05,
        )
        # Generous: joining the group and the first fetch can take seconds on a loaded machine.
        handled = await loop.run(asyncio.Event(), idle_timeout=5.0)
        committed = await consumer.committed(TopicPartition(topic, 0))
        if letters is not None:
            letters.extend(dead_letters.sent)
        return handled, committed
    finally:
        await consumer.stop()
        await producer.stop()


async def test_poison_record_is_dead_lettered_once_and_the_rest_handled(infra: Infra) -> None:
    values = [b"a", b"poison", b"undecodable", b"b", b"c"]
    topic = await _topic_with(infra, values)
    handled: list[str] = []
    decoder = Decoder()
    sent: list[DeadLetterV1] = []

    async def handler(batch: Sequence[Decoded[str]]) -> None:
        if any(d.value == "poison" for d in batch):
            raise ValueError("cannot handle poison")
        handled.extend(d.value for d in batch)

    count, committed = await _run(
        infra, topic, f"g-{uuid.uuid4().hex}", handler, decoder=decoder, letters=sent
    )
    assert handled == ["a", "b", "c"]  # each once, in order
    assert decoder.calls == {v.decode(): 1 for v in values}  # isolation does not decode again
    assert sorted((d.payload, d.code) for d in sent) == [
        ("poison", "processing_failed"),
        ("undecodable", "bad_shape"),
    ]
    assert count == len(values)
    assert committed == len(values)
    letters = await collect(
        infra.bootstrap,
        topics.DEAD_LETTERS,
        decode=decode_dead_letter,
        match=lambda d: d.origin == topic,
        count=2,
    )
    assert {(d.payload, d.code) for d in letters} == {
        ("poison", "processing_failed"),
        ("undecodable", "bad_shape"),
    }
    assert all("poison" in d.reason or "this topic" in d.reason for d in letters)


async def test_transient_failure_retries_the_batch_without_dead_letters(infra: Infra) -> None:
    topic = await _topic_with(infra, [b"x", b"y"])
    attempts: list[list[str]] = []
    sent: list[DeadLetterV1] = []

    async def handler(batch: Sequence[Decoded[str]]) -> None:
        attempts.append([d.value for d in batch])
        if len(attempts) < 3:
            raise ConnectionRefusedError("database is restarting")

    count, committed = await _run(infra, topic, f"g-{uuid.uuid4().hex}", handler, letters=sent)
    assert count == 2
    assert committed == 2
    assert len(attempts) == 3
    assert attempts[0] == attempts[-1] == ["x", "y"]
    assert sent == []


async def test_retried_batch_decodes_and_dead_letters_its_poison_once(infra: Infra) -> None:
    values = [b"x", b"undecodable", b"y"]
    topic = await _topic_with(infra, values)
    attempts: list[list[str]] = []
    decoder = Decoder()
    sent: list[DeadLetterV1] = []

    async def handler(batch: Sequence[Decoded[str]]) -> None:
        attempts.append([d.value for d in batch])
        if len(attempts) < 4:
            raise ConnectionRefusedError("database is restarting")

    count, committed = await _run(
        infra, topic, f"g-{uuid.uuid4().hex}", handler, decoder=decoder, letters=sent
    )
    assert attempts == [["x", "y"]] * 4
    assert decoder.calls == {v.decode(): 1 for v in values}
    assert [(d.payload, d.code, d.offset) for d in sent] == [("undecodable", "bad_shape", 1)]
    assert count == committed == len(values)


async def test_fill_gathers_records_arriving_after_the_first_poll(infra: Infra) -> None:
    # The first record is there before the loop starts; the handler's first call starts a
    # producer that sends ten more, each only once the consumer has fetched the one before.
    # So every fetch brings at most one record, and only the fill window (topping a batch up
    # from the fetches that complete within fill_ms) can put several records in one batch.
    topic = await _topic_with(infra, [b"r0"])
    batches: list[list[str]] = []
    fetches: list[list[str]] = []
    fetched_more = asyncio.Event()
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all", linger_ms=0)
    await producer.start()

    def on_fetch(values: list[str]) -> None:
        if values:
            fetches.append(values)
            fetched_more.set()

    async def trickle() -> None:
        for i in range(1, 11):
            await producer.send_and_wait(topic, f"r{i}".encode(), key=b"k")
            async with asyncio.timeout(10):
                while all(f"r{i}" not in fetch for fetch in fetches):
                    fetched_more.clear()
                    await fetched_more.wait()

    tasks: list[asyncio.Task[None]] = []

    async def handler(batch: Sequence[Decoded[str]]) -> None:
        batches.append([d.value for d in batch])
        if not tasks:
            tasks.append(asyncio.create_task(trickle()))

    try:
        count, committed = await _run(
            infra,
            topic,
            f"g-{uuid.uuid4().hex}",
            handler,
            max_records=4,
            fill_ms=2_000,
            on_fetch=on_fetch,
        )
        await tasks[0]
    finally:
        await producer.stop()
    assert count == committed == 11
    assert all(len(fetch) == 1 for fetch in fetches), fetches
    assert [v for batch in batches for v in batch] == [f"r{i}" for i in range(11)]
    assert batches[0] == ["r0"]  # nothing else arrived within its fill window
    assert all(len(batch) <= 4 for batch in batches), batches  # max_records holds
    # Single-record fetches topped up to max_records: the fill window at work.
    assert any(len(batch) == 4 for batch in batches), batches
