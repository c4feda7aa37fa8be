"""``/v1/destinations``: where actions are delivered (admin)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from services.messenger.context import MessengerDep
from services.messenger.delivery.signing import generate_secret, mask_secret
from services.messenger.destinations import repository
from services.messenger.destinations.models import Destination
from services.messenger.destinations.schemas import (
    Channel,
    DestinationCreated,
    DestinationIn,
    DestinationOut,
    DestinationPatch,
    TestSendOut,
)
from services.messenger.destinations.secrets import UndecryptableSecret
from services.messenger.destinations.urlcheck import checked_url
from services.messenger.webhooks.body import test_body
from services.messenger.webhooks.sender import send_signed
from shared.db import transaction
from shared.errors import Conflict, NotFound, Unavailable, Unprocessable
from shared.http.auth import AdminDep
from shared.http.pages import Page, whole

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/destinations", tags=["destinations"], dependencies=[AdminDep])

Responses = dict[int | str, dict[str, Any]]

_NOT_FOUND: Responses = {404: {"description": "no destination with this id"}}
_INVALID: Responses = {422: {"description": "invalid body, or a URL that is refused (SSRF guard)"}}


def _masked(row: Destination, ctx: MessengerDep) -> str:
    try:
        return mask_secret(ctx.secrets.open(row.secret_encrypted))
    except UndecryptableSecret:
        return mask_secret("")  # a masked value that reveals nothing


def _out(row: Destination, ctx: MessengerDep) -> DestinationOut:
    return DestinationOut(
        id=row.id,
        name=row.name,
        channel=row.channel,
        url=row.url,
        secret=_masked(row, ctx),
        rate_limit_per_second=row.rate_limit_per_second,
        max_concurrency=row.max_concurrency,
        enabled=row.enabled,
        default=row.is_default,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _unavailable(exc: SQLAlchemyError) -> Unavailable:
    """A database error while writing a secret: its message would carry the statement's
    parameters (the secret among them), so only its type is logged."""
    log.warning("database error saving a destination", extra={"error": type(exc).__name__})
    return Unavailable("database unavailable; retry", headers={"Retry-After": "2"})


def _values(
    body: DestinationIn, ctx: MessengerDep, *, url: str, secret_encrypted: str
) -> repository.DestinationValues:
    return repository.DestinationValues(
        channel=body.channel,
        url=url,
        secret_encrypted=secret_encrypted,
        name=body.name,
        rate_limit_per_second=body.rate_limit_per_second,
        max_concurrency=body.max_concurrency or ctx.settings.destination_concurrency,
        enabled=body.enabled,
    )


@router.post(
    "",
    status_code=201,
    summary="Create a destination (its secret is shown only in this response)",
    responses={409: {"description": "another request changed the default meanwhile"}, **_INVALID},
)
async def create_destination(body: DestinationIn, ctx: MessengerDep) -> DestinationCreated:
    secret = body.secret or generate_secret()
    url = await checked_url(body.url, allow_private=ctx.allow_private, resolver=ctx.resolver)
    values = _values(body, ctx, url=url, secret_encrypted=ctx.secrets.seal(secret))
    try:
        async with transaction(ctx.sessions) as session:
            row = await repository.create(
                session, values, default=body.default, now=datetime.now(UTC)
            )
    except IntegrityError:
        raise Conflict("the channel's default destination changed meanwhile; retry") from None
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from None
    return DestinationCreated(**{**_out(row, ctx).model_dump(), "secret": secret})


@router.get("", summary="List destinations (secrets masked)")
async def list_destinations(
    ctx: MessengerDep, channel: Annotated[Channel | None, Query()] = None
) -> Page[DestinationOut]:
    async with ctx.sessions() as session:
        rows = await repository.list_all(session, channel=channel)
    return whole([_out(r, ctx) for r in rows])


async def _existing(ctx: MessengerDep, destination_id: str) -> Destination:
    async with ctx.sessions() as session:
        row = await repository.get(session, destination_id)
    if row is None:
        raise NotFound(f"no destination with id {destination_id}")
    return row


@router.get("/{destination_id}", summary="Get a destination (secret masked)", responses=_NOT_FOUND)
async def get_destination(destination_id: str, ctx: MessengerDep) -> DestinationOut:
    return _out(await _existing(ctx, destination_id), ctx)


@router.put(
    "/{destination_id}",
    summary="Replace a destination (omit secret to keep it; enabled=true re-enables)",
    responses={**_NOT_FOUND, **_INVALID, 409: {"description": "default changed meanwhile"}},
)
async def replace_destination(
    destination_id: str, body: DestinationIn, ctx: MessengerDep
) -> DestinationOut:
    url = await checked_url(body.url, allow_private=ctx.allow_private, resolver=ctx.resolver)
    try:
        async with transaction(ctx.sessions) as session:
            row = await repository.get(session, destination_id, for_update=True)
            if row is None:
                raise NotFound(f"no destination with id {destination_id}")
            sealed = ctx.secrets.seal(body.secret) if body.secret else row.secret_encrypted
            values = _values(body, ctx, url=url, secret_encrypted=sealed)
            row = await repository.replace(
                session, row, values, default=body.default, now=datetime.now(UTC)
            )
    except IntegrityError:
        raise Conflict("the channel's default destination changed meanwhile; retry") from None
    except SQLAlchemyError as exc:
        raise _unavailable(exc) from None
    return _out(row, ctx)


@router.patch(
    "/{destination_id}",
    summary="Enable or disable a destination (enabling clears an automatic disable)",
    responses=_NOT_FOUND,
)
async def patch_destination(
    destination_id: str, body: DestinationPatch, ctx: MessengerDep
) -> DestinationOut:
    async with transaction(ctx.sessions) as session:
        row = await repository.set_enabled(
            session, destination_id, enabled=body.enabled, now=datetime.now(UTC)
        )
    if row is None:
        raise NotFound(f"no destination with id {destination_id}")
    return _out(row, ctx)


@router.post(
    "/{destination_id}/test",
    summary="Send a signed test webhook (type destination.test) and report what came back",
    description="Sent once, now, whether the destination is enabled or not; nothing is "
    "stored and nothing is retried. A 200 here means the test was sent, not that the "
    "receiver accepted it: see `delivered`.",
    responses=_NOT_FOUND,
)
async def test_destination(destination_id: str, ctx: MessengerDep) -> TestSendOut:
    row = await _existing(ctx, destination_id)
    try:
        secret = ctx.secrets.open(row.secret_encrypted)
    except UndecryptableSecret:
        raise Unprocessable(
            "the destination's secret cannot be decrypted with CLM_SECRET_KEY or "
            "CLM_SECRET_KEYS_OLD; set the key it was stored with, or PUT a new secret"
        ) from None
    now = datetime.now(UTC)
    webhook_id = "test_" + uuid.uuid4().hex
    report = await send_signed(
        ctx.http,
        url=row.url,
        secret=secret,
        msg_id=webhook_id,
        body=test_body(row.id, now=now),
        timeout=ctx.settings.delivery_timeout_seconds,
        allow_private=ctx.allow_private,
        excerpt_bytes=ctx.settings.response_excerpt_bytes,
        now=now,
    )
    code = report.status_code
    return TestSendOut(
        delivered=code is not None and 200 <= code < 300,
        status_code=code,
        latency_ms=round(report.latency_ms, 1),
        error=report.error,
        response_body=report.response_excerpt,
        webhook_id=webhook_id,
    )


@router.delete(
    "/{destination_id}",
    status_code=204,
    summary="Delete a destination",
    description="Pending deliveries that named it fail (replayable); those routed to it as "
    "the channel's default go to the channel's default at send time.",
    responses=_NOT_FOUND,
)
async def delete_destination(destination_id: str, ctx: MessengerDep) -> Response:
    async with transaction(ctx.sessions) as session:
        removed = await repository.remove(session, destination_id)
    if not removed:
        raise NotFound(f"no destination with id {destination_id}")
    return Response(status_code=204)
