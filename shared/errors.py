"""One error base for every service, rendered by one handler as ``{"code", "message"}``.

That is the shape Segment clients parse, and we use it for the ops APIs too. Errors of
PostgreSQL or Kafka being unreachable (``shared.transient``) are answered ``503`` with
``Retry-After``, never ``500``; text PostgreSQL cannot store (a NUL character) is a ``422``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.http.responses import JSONBytesResponse
from shared.transient import is_transient

log = logging.getLogger(__name__)


class ServiceError(Exception):
    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers
        self.details = details


class BadRequest(ServiceError):
    status_code, code = 400, "bad_request"


class Unauthorized(ServiceError):
    status_code, code = 401, "unauthorized"


class NotFound(ServiceError):
    status_code, code = 404, "not_found"


class Conflict(ServiceError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(ServiceError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code, code = 415, "unsupported_media_type"


class Unprocessable(ServiceError):
    status_code, code = 422, "invalid"


class Overloaded(ServiceError):
    status_code, code = 429, "overloaded"


class Unavailable(ServiceError):
    status_code, code = 503, "unavailable"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["errors"] = details
    return body


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


#: SQLSTATEs of text the server cannot store: 22021 (a NUL byte, invalid UTF-8) and 22P05
#: (``\u0000`` in JSON).
_UNSTORABLE_TEXT = ("22021", "22P05")


def _unstorable_text(exc: BaseException) -> bool:
    return isinstance(exc, DBAPIError) and getattr(exc.orig, "sqlstate", None) in _UNSTORABLE_TEXT


def _dependency_of(exc: BaseException) -> str:
    if isinstance(exc, KafkaError):
        return "Kafka"
    if isinstance(exc, SQLAlchemyError):
        return "PostgreSQL"
    return "PostgreSQL or Kafka"


def install_error_handlers(app: FastAPI, *, retry_after: int = 2) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONBytesResponse:
        return JSONBytesResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONBytesResponse:
        errors = [
            {"loc": _location(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        message = "; ".join(f"{e['loc']}: {e['message']}" for e in errors) or "invalid request"
        return JSONBytesResponse(error_body("invalid", message, errors), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONBytesResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONBytesResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONBytesResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONBytesResponse(error_body("internal_error", "internal error"), status_code=500)

    async def _dependency_error(request: Request, exc: Exception) -> JSONBytesResponse:
        if is_transient(exc):
            # The type only: a database error's text carries the statement's parameters.
            log.warning(
                "dependency unavailable",
                extra={"path": request.url.path, "error": type(exc).__name__},
            )
            return JSONBytesResponse(
                error_body("unavailable", f"{_dependency_of(exc)} is unavailable; retry later"),
                status_code=503,
                headers={"Retry-After": str(retry_after)},
            )
        if _unstorable_text(exc):
            return JSONBytesResponse(
                error_body("invalid", "text must not contain NUL characters (\\u0000)"),
                status_code=422,
            )
        return await _unexpected(request, exc)

    for kind in (OSError, TimeoutError, SQLAlchemyError, KafkaError):
        app.add_exception_handler(kind, _dependency_error)
