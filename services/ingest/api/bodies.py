"""The Tracking API's request bodies for the OpenAPI document.

The routes read their body themselves (size limits before reading, gzip, the write key in
the body), so FastAPI cannot infer it; these are the message models' own schemas, with an
example per call.
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from services.ingest.tracking.messages import MESSAGE_MODELS, BatchBody

_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "track": {
        "userId": "user-42",
        "event": "Product Added",
        "properties": {"product_id": "sku-1", "price": 25.0, "quantity": 1},
        "messageId": "m-1",
        "timestamp": "2026-11-22T12:00:00Z",
    },
    "identify": {"userId": "user-42", "traits": {"email": "ada@example.com", "timezone": "UTC"}},
    "page": {"anonymousId": "anon-7", "name": "Home", "properties": {"path": "/"}},
    "screen": {"userId": "user-42", "name": "Cart"},
    "alias": {"userId": "user-42", "previousId": "anon-7"},
    "group": {"userId": "user-42", "groupId": "acme", "traits": {"name": "Acme"}},
}


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    if "$defs" in schema:  # would need components; the messages are flat today
        raise RuntimeError(f"{model.__name__} has nested models: document them as components")
    return schema


def _content(schema: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


def single(call: str) -> dict[str, Any]:
    """``openapi_extra`` of ``/v1/{call}``."""
    return _content(_schema(MESSAGE_MODELS[call]), _EXAMPLES[call])


def batch() -> dict[str, Any]:
    """``openapi_extra`` of ``/v1/batch``: members are any message, told apart by ``type``."""
    schema = _schema(BatchBody)
    schema["properties"]["batch"] = {
        "type": "array",
        "title": "Batch",
        "description": "messages, each with its `type`; each is validated on its own",
        "items": {"oneOf": [_schema(model) for model in MESSAGE_MODELS.values()]},
    }
    example = {"batch": [{"type": call, **body} for call, body in _EXAMPLES.items()]}
    return _content(schema, example)
