"""Create the contract's topics when missing.

Tansu reports only the topic configs given at creation, so retention is always set
explicitly here rather than left to broker defaults. Topics that exist are left as they are:
a changed partition count or replication factor applies to topics created from then on
(``docs/production.md`` says how to change existing ones).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared import topics

log = logging.getLogger(__name__)

DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicConfig:
    """How topics are created (``CLM_KAFKA_TOPIC_PARTITIONS``, ``…_RETENTION_MS``,
    ``CLM_KAFKA_REPLICATION_FACTOR``, ``CLM_KAFKA_MIN_INSYNC_REPLICAS``)."""

    partitions: int = 8
    retention_ms: int = 7 * 24 * 3600 * 1000
    replication_factor: int = 1
    min_insync_replicas: int | None = None

    def configs(self, name: str) -> dict[str, str]:
        retention = DEAD_LETTER_RETENTION_MS if name == topics.DEAD_LETTERS else self.retention_ms
        configs = {"retention.ms": str(retention)}
        if self.min_insync_replicas is not None:
            configs["min.insync.replicas"] = str(self.min_insync_replicas)
        return configs


async def ensure_topics(
    bootstrap: str,
    config: TopicConfig | None = None,
    *,
    names: tuple[str, ...] = topics.ALL,
    timeout: float = 60.0,
) -> list[str]:
    """Create the missing topics; return the names created. Retries until ``timeout``."""
    config = config or TopicConfig()
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="clm-admin")
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            new = [
                NewTopic(
                    name=n,
                    num_partitions=config.partitions,
                    replication_factor=config.replication_factor,
                    topic_configs=config.configs(n),
                )
                for n in missing
            ]
            if new:
                with contextlib.suppress(TopicAlreadyExistsError):  # another instance won
                    await admin.create_topics(new)
                log.info("created topics", extra={"topics": missing})
            return missing
        except (KafkaError, OSError) as exc:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("kafka not ready for topic creation, retrying", extra={"error": str(exc)})
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def partition_count(bootstrap: str, topic: str, *, timeout: float = 30.0) -> int:
    """The partition count of ``topic``, waiting up to ``timeout`` for it to exist (as the
    broker tells it now: a client's cached metadata may predate the topic)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id="clm-admin")
        try:
            await admin.start()
            for found in await admin.describe_topics([topic]):
                if found.get("topic") == topic and found.get("partitions"):
                    return len(found["partitions"])
        except (KafkaError, OSError) as exc:
            log.warning("kafka not ready for a topic description", extra={"error": str(exc)})
        finally:
            await admin.close()
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"topic {topic} has no partitions")
        await asyncio.sleep(0.2)
