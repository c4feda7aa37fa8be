"""Session fixtures: a real PostgreSQL and a real Kafka-protocol broker, started once.

They reuse the ``clm`` runtime code (the same parts ``make run`` starts). Set
``CLM_DATABASE_URL`` and ``CLM_KAFKA_BOOTSTRAP`` to run against external servers instead.
Each test isolates itself with its own ids (a random source, customer prefix or group).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clm.runtime import EmbeddedKafka, EmbeddedPostgres, free_port, prepare_all
from tests.support.services import Infra

# Tansu holds a group join for about half the session timeout: keep joins short in tests.
os.environ.setdefault("CLM_KAFKA_SESSION_TIMEOUT_MS", "2000")


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    database_url = os.environ.get("CLM_DATABASE_URL")
    bootstrap = os.environ.get("CLM_KAFKA_BOOTSTRAP")
    tmp = Path(tempfile.mkdtemp(prefix="clm-test-"))
    postgres = kafka = None
    try:
        if not database_url:
            postgres = EmbeddedPostgres(tmp / "postgres", cleanup="delete")
            database_url = postgres.start()
        if not bootstrap:
            kafka = EmbeddedKafka(free_port(), log_path=tmp / "kafka.log")
            bootstrap = kafka.start()
        asyncio.run(prepare_all(database_url, bootstrap))
        yield Infra(database_url, bootstrap)
    finally:
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(tmp, ignore_errors=True)
