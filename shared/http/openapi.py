"""The OpenAPI document lists the answers the shared shell gives, not only the routes' own.

Some answers never pass through a route's declaration, so FastAPI cannot document them:
every error body is ``{"code", "message"}`` (``shared.errors``; FastAPI would document its
own ``HTTPValidationError`` for 422, a shape no service sends), a missing or unknown admin
token is 401 (``shared.http.auth``), a PostgreSQL or Kafka that does not answer is 503 with
``Retry-After`` (``shared.http.unavailable``, ``shared.errors``), a malformed ``cursor``
is 400 (``shared.http.pages``) and so is a body FastAPI cannot decode (a syntax error in
JSON text is a 422). :func:`install_openapi` adds them to every operation they
apply to, once, when the document is first built; the schemathesis run in the tests holds
the document to what the server answers.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from shared.http.unavailable import EXEMPT_PATHS

ERROR_REF = "#/components/schemas/Error"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


class Error(BaseModel):
    """Every error answer of every service (and the shape Segment clients parse)."""

    code: str = Field(description="machine-readable, e.g. `invalid`, `not_found`")
    message: str = Field(description="for people")
    errors: Any = Field(
        default=None,
        description="details, when there are any: for `invalid`, a list of "
        '`{"loc", "message"}`, one per problem',
    )


def _error_content() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": ERROR_REF}}}


_VALIDATION_REF = "#/components/schemas/HTTPValidationError"


def _retry_after() -> dict[str, Any]:
    return {
        "Retry-After": {
            "description": "seconds to wait before retrying",
            "schema": {"type": "integer"},
        }
    }


def _shell_answers(path: str, operation: dict[str, Any]) -> dict[str, str]:
    """The statuses the shell may answer ``operation`` with, and why."""
    answers: dict[str, list[str]] = {}
    if operation.get("security"):
        answers.setdefault("401", []).append("missing or unknown admin bearer token")
    if any(
        p.get("name") == "cursor" and p.get("in") == "query"
        for p in operation.get("parameters", [])
    ):
        answers.setdefault("400", []).append("`cursor` is not one this list handed out")
    if "requestBody" in operation:
        answers.setdefault("400", []).append("the body cannot be read as JSON (not UTF-8, say)")
    if path not in EXEMPT_PATHS:
        answers.setdefault("503", []).append(
            "PostgreSQL or Kafka does not answer: retry after `Retry-After`"
        )
    return {status: "; ".join(reasons) for status, reasons in answers.items()}


def complete(document: dict[str, Any]) -> None:
    """Add the shell's answers to ``document`` (in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, description in _shell_answers(path, operation).items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if not status.startswith(("4", "5")):
                    continue
                content = response.get("content")
                if content is None or any(
                    media.get("schema", {}).get("$ref") == _VALIDATION_REF
                    for media in content.values()
                ):
                    response["content"] = _error_content()
                if status in ("429", "503") and path not in EXEMPT_PATHS:
                    # a request's 429 or 503 says when to come back (/readyz's does not)
                    response["headers"] = {**response.get("headers", {}), **_retry_after()}
    text = json.dumps(document)
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's, now unreferenced
        if f'"#/components/schemas/{unused}"' not in text:
            schemas.pop(unused, None)
            text = json.dumps(document)


def install_openapi(app: FastAPI) -> None:
    """Build ``app``'s document as FastAPI does, then :func:`complete` it."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            complete(build())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
