"""The Segment Tracking API: ``/v1/track``, ``/identify``, ``/page``, ``/screen``, ``/alias``,
``/group`` and ``/batch`` (``/import`` is Segment's historical alias of ``/batch``).

A ``200`` means every accepted message is on ``clm.events`` with ``acks=all``. Errors use
Segment's ``{"code", "message"}`` shape; every rejected message also goes to
``clm.dead-letters`` with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka.errors import KafkaError, KafkaTimeoutError
from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPBasic
from pydantic import BaseModel, Field
from sqlalchemy.exc import SQLAlchemyError

from services.ingest.api import bodies
from services.ingest.body import check_content_type, parse_json_object, read_body
from services.ingest.context import IngestContext, IngestDep
from services.ingest.tracking.errors import InvalidBody
from services.ingest.tracking.validate import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Rejection,
    parse_batch,
    parse_message,
)
from services.ingest.writekeys.keys import parse_basic_auth
from shared.envelope import EventV1
from shared.errors import BadRequest, Overloaded, Unauthorized, Unavailable

log = logging.getLogger(__name__)


class _WriteKeyScheme(HTTPBasic):
    """Documents the write key as what Segment clients send: the HTTP Basic username.

    Reading it is :func:`_read`'s (after the content type and size checks, and it also takes
    ``writeKey`` from the body), so this dependency only puts the scheme in the document."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


WRITE_KEY = _WriteKeyScheme(
    scheme_name="WriteKey",
    auto_error=False,
    description="The source's write key as the HTTP Basic username, with an empty password "
    "(or as `writeKey` in the body)",
)
#: The Basic header, or nothing but the body's ``writeKey``.
_SECURITY: dict[str, Any] = {"security": [{}]}

router = APIRouter(tags=["tracking"], dependencies=[Security(WRITE_KEY)])


class RejectedMessage(BaseModel):
    index: int
    code: str
    message: str


class TrackingResponse(BaseModel):
    success: bool = True
    rejected: list[RejectedMessage] | None = Field(
        default=None, description="Batch messages that failed validation (the rest were accepted)"
    )


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed JSON or an invalid message"},
    401: {"description": "missing or unknown write key"},
    413: {"description": "over 32 KB per message or 500 KB per request"},
    415: {"description": "not JSON, or an unsupported Content-Encoding"},
    429: {"description": "overloaded: retry after the Retry-After seconds"},
    503: {"description": "Kafka or PostgreSQL unreachable: retry after Retry-After"},
}


async def _source_of(key: str | None, ctx: IngestContext) -> str:
    if not key:
        raise Unauthorized(
            "missing write key: send it as the HTTP Basic username or as writeKey in the body",
            code="missing_write_key",
        )
    source = await ctx.write_keys.source_of(key)
    if source is None:
        raise Unauthorized("unknown or revoked write key", code="invalid_write_key")
    return source


async def _read(
    request: Request, ctx: IngestContext, limit: int
) -> tuple[str, dict[str, Any], bytes]:
    """Read, authenticate and parse a request: (source, body, the body's bytes). Malformed
    bodies from an authenticated sender are dead-lettered too, so an operator can see what
    the site sent."""
    check_content_type(request)
    raw = await read_body(request, limit)
    header_key = parse_basic_auth(request.headers.get("authorization"))
    try:
        body = parse_json_object(raw)
    except BadRequest as exc:
        if header_key:
            source = await _source_of(header_key, ctx)
            await ctx.dead_letters.send(
                origin="http", source=source, code="invalid_json", reason=exc.message, payload=raw
            )
        raise
    body_key = body.get("writeKey")
    key = header_key or (body_key if isinstance(body_key, str) else None)
    return await _source_of(key, ctx), body, raw


@asynccontextmanager
async def _capacity(ctx: IngestContext) -> AsyncIterator[None]:
    """Shed load with 429 instead of queueing without bound when Kafka cannot keep up."""
    retry = {"Retry-After": str(ctx.settings.retry_after_seconds)}
    if ctx.inflight >= ctx.settings.max_inflight_requests:
        raise Overloaded("too many requests in flight; retry later", headers=retry)
    ctx.inflight += 1
    try:
        yield
    except (KafkaTimeoutError, TimeoutError) as exc:
        raise Overloaded("the event log is not keeping up; retry later", headers=retry) from exc
    except KafkaError as exc:
        log.warning("kafka unavailable", extra={"error": repr(exc)})
        raise Unavailable("the event log is unavailable; retry later", headers=retry) from exc
    except (SQLAlchemyError, OSError) as exc:
        log.warning("database unavailable", extra={"error": repr(exc)})
        raise Unavailable("the database is unavailable; retry later", headers=retry) from exc
    finally:
        ctx.inflight -= 1


def _member_payload(member: Any, body: bytes) -> bytes:
    """A rejected batch member as JSON; the whole request body (the letter's ``index`` points
    at the member) when the member cannot be encoded again (nested too deep, say)."""
    try:
        return orjson.dumps(member)
    except TypeError:  # orjson.JSONEncodeError
        return body


async def _dead_letter(
    ctx: IngestContext, source: str, rejected: Sequence[tuple[int | None, Rejection, bytes]]
) -> None:
    await ctx.dead_letters.send_many(
        [
            ctx.dead_letters.build(
                origin="http",
                source=source,
                index=index,
                code=r.code,
                reason=r.message,
                errors=r.errors,
                payload=payload,
            )
            for index, r, payload in rejected
        ]
    )


async def _single(request: Request, ctx: IngestContext, call: str) -> TrackingResponse:
    source, body, raw = await _read(request, ctx, MAX_MESSAGE_BYTES)
    result = parse_message(body, source=source, received_at=datetime.now(UTC), call_type=call)
    async with _capacity(ctx):
        if isinstance(result, Rejection):
            await _dead_letter(ctx, source, [(None, result, raw)])
            raise BadRequest(result.message, code=result.code)
        await ctx.pipeline.accept([result], origin="http")
    return TrackingResponse()


def _single_route(call: str, summary: str) -> None:
    async def endpoint(request: Request, ctx: IngestDep) -> TrackingResponse:
        return await _single(request, ctx, call)

    endpoint.__name__ = call
    router.add_api_route(
        f"/v1/{call}",
        endpoint,
        methods=["POST"],
        summary=summary,
        response_model=TrackingResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        openapi_extra={**bodies.single(call), **_SECURITY},
    )


for _call, _summary in (
    ("track", "Record an action a customer took"),
    ("identify", "Tie a customer to their traits"),
    ("page", "Record a page view"),
    ("screen", "Record a mobile screen view"),
    ("alias", "Merge two customer identities"),
    ("group", "Associate a customer with a group"),
):
    _single_route(_call, _summary)


async def _batch(request: Request, ctx: IngestContext) -> TrackingResponse:
    source, body, raw = await _read(request, ctx, MAX_BATCH_BYTES)
    try:
        accepted, rejected = parse_batch(body, source=source, received_at=datetime.now(UTC))
    except InvalidBody as exc:
        await _dead_letter(ctx, source, [(None, exc.rejection, raw)])
        raise BadRequest(exc.rejection.message, code=exc.rejection.code) from None
    messages: list[Any] = body["batch"]
    async with _capacity(ctx):
        if rejected:
            await _dead_letter(
                ctx, source, [(i, r, _member_payload(messages[i], raw)) for i, r in rejected]
            )
        events: list[EventV1] = [e for _, e in accepted]
        await ctx.pipeline.accept(events, origin="http")
    if not rejected:
        return TrackingResponse()
    return TrackingResponse(
        rejected=[RejectedMessage(index=i, code=r.code, message=r.message) for i, r in rejected]
    )


@router.post(
    "/v1/batch",
    summary="Send many messages at once (up to 500 KB)",
    response_model=TrackingResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    openapi_extra={**bodies.batch(), **_SECURITY},
)
async def batch(request: Request, ctx: IngestDep) -> TrackingResponse:
    return await _batch(request, ctx)


@router.post(
    "/v1/import",
    summary="Alias of /v1/batch (Segment's historical import endpoint)",
    response_model=TrackingResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
    include_in_schema=False,
)
async def import_(request: Request, ctx: IngestDep) -> TrackingResponse:
    return await _batch(request, ctx)
