from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.support.services import Infra, RunningService, settings_env, start_service


@pytest.fixture(scope="module")
async def ingest(infra: Infra) -> AsyncIterator[RunningService]:
    """One ingest service for the module, without the storefront consumer (tested apart)."""
    settings = IngestSettings(**settings_env(infra, storefront_consumer=False))  # type: ignore[arg-type]
    service = await start_service(create_app(settings))
    yield service
    await service.stop()


@dataclass(frozen=True)
class Source:
    name: str
    key: str
    id: str


@pytest.fixture
async def source(ingest: RunningService) -> Source:
    """A fresh storefront with its own write key: events of this test carry its name."""
    name = f"shop-{uuid.uuid4().hex[:10]}"
    async with ingest.admin() as client:
        response = await client.post("/v1/write-keys", json={"source": name})
    assert response.status_code == 201, response.text
    body = response.json()
    return Source(name=name, key=body["key"], id=body["id"])
