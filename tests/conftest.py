"""Session fixtures: a real PostgreSQL and a real Kafka-protocol broker, started once.

They reuse the ``clm`` runtime code (the same parts ``make run`` starts). Set
``CLM_DATABASE_URL`` and ``CLM_KAFKA_BOOTSTRAP`` to run against external servers instead.
Each test isolates itself with its own ids (a random source, customer prefix or group).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from clm.runtime import infrastructure
from tests.support.services import Infra

# Tansu holds a group join for about half the session timeout: keep joins short in tests.
os.environ.setdefault("CLM_KAFKA_SESSION_TIMEOUT_MS", "2000")


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    tmp = Path(tempfile.mkdtemp(prefix="clm-test-"))
    try:
        with infrastructure(tmp) as (database_url, bootstrap):
            yield Infra(database_url, bootstrap)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
