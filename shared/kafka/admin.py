"""Create the contract's topics when missing.

Tansu reports only the topic configs given at creation, so retention is always set
explicitly here rather than left to broker defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared import topics

log = logging.getLogger(__name__)

DEAD_LETTER_RETENTION_MS = 30 * 24 * 3600 * 1000


async def ensure_topics(
    bootstrap: str,
    *,
    partitions: int = 8,
    retention_ms: int = 7 * 24 * 3600 * 1000,
    replication_factor: int = 1,
    names: tuple[str, ...] = topics.ALL,
    timeout: float = 60.0,
) -> list[str]:
    """Create the missing topics; return the names created. Retries until ``timeout``."""
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
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs={
                        "retention.ms": str(
                            DEAD_LETTER_RETENTION_MS if n == topics.DEAD_LETTERS else retention_ms
                        )
                    },
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
