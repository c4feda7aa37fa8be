"""Every service's OpenAPI document lists the answers the shared shell gives (no server
needed: the documents are built from the apps). ``tests/test_openapi_fuzz.py`` holds them
to what the running servers answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI

from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.messenger.app import create_app as create_messenger
from services.messenger.settings import MessengerSettings
from services.trigger_engine.app import create_app as create_engine
from services.trigger_engine.settings import EngineSettings
from shared.http.unavailable import EXEMPT_PATHS
from shared.settings import ServiceSettings

SETTINGS: dict[str, Any] = {
    "database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none",
    "kafka_bootstrap": "127.0.0.1:1",
    "admin_token": "adm_document_test",
    "dev_mode": True,
}
APPS: list[tuple[Callable[[ServiceSettings], FastAPI], type[ServiceSettings]]] = [
    (create_ingest, IngestSettings),
    (create_engine, EngineSettings),
    (create_messenger, MessengerSettings),
]


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


@pytest.fixture(params=APPS, ids=["ingest", "trigger_engine", "messenger"])
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    create, settings = request.param
    spec: dict[str, Any] = create(settings(**SETTINGS)).openapi()
    return spec


def test_every_error_answer_has_the_error_shape(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if status[0] in "45" and path != "/readyz":
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_guarded_operations_document_401_and_503(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        responses = operation["responses"]
        if operation.get("security"):
            assert "401" in responses, (method, path)
        if path not in EXEMPT_PATHS:
            assert "Retry-After" in responses["503"]["headers"], (method, path)
        if "requestBody" in operation:
            assert "400" in responses, (method, path)


def test_metrics_are_documented_as_text(document: dict[str, Any]) -> None:
    content = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]
