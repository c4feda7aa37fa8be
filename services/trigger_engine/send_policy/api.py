"""``GET/PUT /v1/send-policy``: consent modes, frequency caps and quiet hours for every send."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel

from services.trigger_engine.context import EngineDep
from services.trigger_engine.core.policy import Cap, ConsentModes, SendPolicy
from services.trigger_engine.core.quiet_hours import QuietHours
from services.trigger_engine.core.rules import Channel
from services.trigger_engine.send_policy import repository
from shared.db import transaction
from shared.http.auth import AdminDep
from shared.http.schema import DocumentedAs

router = APIRouter(prefix="/v1/send-policy", tags=["send policy"], dependencies=[AdminDep])

_EXAMPLE: dict[str, Any] = {
    "caps": {
        "email": [{"max": 3, "per": "P1D"}, {"max": 10, "per": "P7D"}],
        "sms": [{"max": 1, "per": "P1D"}],
    },
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "default_timezone": "Europe/Berlin",
    "consent": {"email": "opt_out", "sms": "opt_in", "push": "opt_out", "webhook": "opt_out"},
}


class SendPolicyOut(BaseModel):
    version: int
    caps: dict[Channel, list[Cap]]
    quiet_hours: QuietHours | None
    default_timezone: str
    consent: ConsentModes


def _out(version: int, policy: SendPolicy) -> SendPolicyOut:
    return SendPolicyOut(
        version=version,
        caps=policy.caps,
        quiet_hours=policy.quiet_hours,
        default_timezone=policy.default_timezone,
        consent=policy.consent,
    )


PolicyBody = Annotated[
    dict[str, Any],
    DocumentedAs(SendPolicy),
    Body(
        description="`caps`: channel -> caps `{max, per}` that must all hold (rolling windows, "
        "ISO 8601 durations); `quiet_hours`: `{start, end}` local `HH:MM` in the customer's "
        "`traits.timezone` (else `default_timezone`), optional `channels`; `consent`: per "
        "channel `opt_in` or `opt_out`. Omitted fields take their defaults; `{}` is the "
        "default policy (no caps, no quiet hours).",
        openapi_examples={"typical": {"value": _EXAMPLE}},
    ),
]


def parse_policy(body: dict[str, Any]) -> SendPolicy:
    """``body`` as a policy, or a 422 naming every problem with its location."""
    return repository.SEND_POLICY.parse(body)


@router.get("", summary="The current send policy")
async def get_send_policy(ctx: EngineDep) -> SendPolicyOut:
    async with ctx.sessions() as session:
        version, policy = await repository.current(session)
    return _out(version, policy)


@router.put(
    "",
    summary="Replace the send policy (a new version; applies to the next send)",
    responses={
        422: {"description": "invalid policy; `errors` lists each problem with its location"}
    },
)
async def put_send_policy(body: PolicyBody, ctx: EngineDep) -> SendPolicyOut:
    policy = parse_policy(body)
    async with transaction(ctx.sessions) as session:
        version = await repository.store(session, policy, now=datetime.now(UTC))
    ctx.config.invalidate()
    return _out(version, policy)
