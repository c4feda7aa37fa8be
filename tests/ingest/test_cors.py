"""Browser storefronts: CORS on the Tracking API for the origins in CLM_CORS_ORIGINS only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.ingest.conftest import Source
from tests.ingest.test_tracking_api import basic, track
from tests.support.services import Infra, RunningService, settings_env, start_service

SHOP = "https://shop.example"


@pytest.fixture(scope="module")
async def cors_ingest(infra: Infra) -> AsyncIterator[RunningService]:
    settings = IngestSettings(
        **settings_env(infra, storefront_consumer=False, cors_origins=f"{SHOP}/, https://b.example")  # type: ignore[arg-type]
    )
    assert settings.cors_origins == [SHOP, "https://b.example"]
    service = await start_service(create_app(settings))
    yield service
    await service.stop()


def preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_a_listed_origin_gets_its_preflight_and_headers(
    cors_ingest: RunningService, ingest: RunningService, source: Source
) -> None:
    async with cors_ingest.client() as client:
        answer = await client.options("/v1/track", headers=preflight(SHOP))
        assert answer.status_code == 200
        assert answer.headers["Access-Control-Allow-Origin"] == SHOP
        assert "POST" in answer.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in answer.headers["Access-Control-Allow-Headers"]
        sent = await client.post(
            "/v1/batch",
            json={"batch": [track("u-cors")]},
            headers={**basic(source.key), "Origin": SHOP},
        )
    assert sent.status_code == 200, sent.text
    assert sent.headers["Access-Control-Allow-Origin"] == SHOP


async def test_other_origins_and_the_admin_routes_get_no_cors(
    cors_ingest: RunningService,
) -> None:
    async with cors_ingest.client() as client:
        other = await client.options("/v1/track", headers=preflight("https://evil.example"))
        admin = await client.options("/v1/write-keys", headers=preflight(SHOP))
    assert other.status_code == 400
    assert "Access-Control-Allow-Origin" not in other.headers
    assert admin.status_code == 405
    assert "Access-Control-Allow-Origin" not in admin.headers


async def test_no_origin_is_allowed_by_default(ingest: RunningService) -> None:
    async with ingest.client() as client:
        answer = await client.options("/v1/track", headers=preflight(SHOP))
    assert answer.status_code == 405
    assert "Access-Control-Allow-Origin" not in answer.headers
