"""``POST /v1/provider-events``: callbacks from providers, authenticated per destination.

**Authentication.** The caller signs the request per Standard Webhooks with the secret of the
destination it belongs to — the same ``whsec_`` secret we sign our webhooks with — and names
that destination in the query: ``POST /v1/provider-events?destination_id=dst_…`` with headers
``webhook-id``, ``webhook-timestamp`` (within 5 minutes of our clock) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``. One secret per
destination, nothing else to provision, and a leaked admin token is not needed (nor enough) to
forge callbacks. No admin token is required.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from services.messenger.context import MessengerDep
from services.messenger.destinations import repository as destinations
from services.messenger.destinations.secrets import UndecryptableSecret
from services.messenger.providers.schemas import ProviderEvents, ProviderEventsResult
from services.messenger.providers.service import apply_events
from services.messenger.providers.verify import InvalidSignature, verify
from shared.db import transaction
from shared.errors import PayloadTooLarge, Unauthorized

log = logging.getLogger(__name__)

router = APIRouter(tags=["provider events"])

MAX_BODY = 1024 * 1024


@router.post(
    "/v1/provider-events",
    summary="Record provider events (delivered, bounced, complained, unsubscribed)",
    description=__doc__,
    responses={
        401: {"description": "unknown destination or invalid signature"},
        413: {"description": "body over 1 MB"},
    },
)
async def provider_events(
    events: ProviderEvents,
    request: Request,
    ctx: MessengerDep,
    destination_id: Annotated[str, Query(max_length=200, description="the signing destination")],
) -> ProviderEventsResult:
    body = await request.body()  # the raw bytes FastAPI parsed: what was signed
    if len(body) > MAX_BODY:
        raise PayloadTooLarge("provider events body over 1 MB")
    async with ctx.sessions() as session:
        destination = await destinations.get(session, destination_id)
    refused = Unauthorized("unknown destination or invalid signature", code="invalid_signature")
    if destination is None:
        raise refused
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        secret = ctx.secrets.open(destination.secret_encrypted)
    except UndecryptableSecret:
        log.error("cannot verify provider events", extra={"destination": destination.id})
        raise refused from None
    try:
        verify(
            secret,
            headers,
            body,
            now=int(time.time()),
            tolerance=ctx.settings.provider_event_tolerance_seconds,
        )
    except InvalidSignature:
        raise refused from None
    async with transaction(ctx.sessions) as session:
        accepted, rejected = await apply_events(
            session, destination, events.events, now=datetime.now(UTC)
        )
    return ProviderEventsResult(accepted=accepted, rejected=rejected)
