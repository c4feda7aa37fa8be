"""Topic creation settings: partitions, retention, replication factor and min ISR."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from shared import topics
from shared.kafka.admin import DEAD_LETTER_RETENTION_MS, TopicConfig, ensure_topics
from shared.settings import ServiceSettings
from tests.support.services import Infra


def test_settings_become_the_topic_config() -> None:
    settings = ServiceSettings(
        kafka_topic_partitions=12,
        kafka_topic_retention_ms=3_600_000,
        kafka_replication_factor=3,
        kafka_min_insync_replicas=2,
    )
    config = settings.topic_config()
    assert config == TopicConfig(
        partitions=12, retention_ms=3_600_000, replication_factor=3, min_insync_replicas=2
    )
    assert config.configs(topics.EVENTS) == {"retention.ms": "3600000", "min.insync.replicas": "2"}
    assert config.configs(topics.DEAD_LETTERS)["retention.ms"] == str(DEAD_LETTER_RETENTION_MS)


def test_min_isr_is_left_to_the_broker_unless_set() -> None:
    assert "min.insync.replicas" not in ServiceSettings().topic_config().configs(topics.EVENTS)


def test_a_min_isr_above_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValidationError, match="CLM_KAFKA_MIN_INSYNC_REPLICAS"):
        ServiceSettings(kafka_replication_factor=1, kafka_min_insync_replicas=2)


async def test_topics_are_created_with_the_configured_partitions(infra: Infra) -> None:
    name = f"test.topic.{uuid.uuid4().hex[:8]}"
    config = TopicConfig(partitions=3, replication_factor=1, min_insync_replicas=1)
    assert await ensure_topics(infra.bootstrap, config, names=(name,)) == [name]
    assert await ensure_topics(infra.bootstrap, config, names=(name,)) == []  # exists: left
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        assert consumer.partitions_for_topic(name) == {0, 1, 2}
    finally:
        await consumer.stop()
