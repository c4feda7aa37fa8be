"""Deliveries: by status (dead letters among them), every attempt, replay one or in bulk."""

from __future__ import annotations

import uuid
from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.clients import ApiError
from services.console.security import FormDep, SessionDep
from services.console.web import ApiDep, local_path, redirect, render

router = APIRouter(prefix="/deliveries", tags=["console"])

STATUSES: Final = ("dead", "retrying", "pending", "delivered", "failed", "suppressed", "cancelled")
REPLAYABLE: Final = ("dead", "failed", "retrying", "suppressed", "delivered", "cancelled")


@router.get("", response_class=HTMLResponse)
async def list_deliveries(
    request: Request,
    _: SessionDep,
    api: ApiDep,
    status: str = "",
    customer_id: str = "",
    destination_id: str = "",
    cursor: str = "",
) -> Response:
    page = await api.get(
        "messenger",
        "/v1/deliveries",
        status=status if status in STATUSES else "",
        customer_id=customer_id.strip(),
        destination_id=destination_id.strip(),
        cursor=cursor,
        limit=50,
    )
    return render(
        request,
        "deliveries.html",
        statuses=STATUSES,
        replayable=REPLAYABLE,
        status=status,
        customer_id=customer_id,
        destination_id=destination_id,
        deliveries=page["items"],
        next_cursor=page["next_cursor"],
    )


def _back(status: str, customer_id: str, destination_id: str) -> str:
    given = {"status": status, "customer_id": customer_id, "destination_id": destination_id}
    query = urlencode({name: value for name, value in given.items() if value})
    return "/deliveries" + (f"?{query}" if query else "")


@router.post("/replay")
async def replay_matching(
    request: Request,
    _: FormDep,
    api: ApiDep,
    status: Annotated[str, Form()] = "dead",
    customer_id: Annotated[str, Form()] = "",
    destination_id: Annotated[str, Form()] = "",
) -> Response:
    chosen = status if status in REPLAYABLE else "dead"
    body = {
        "status": [chosen],
        "customer_id": customer_id.strip() or None,
        "destination_id": destination_id.strip() or None,
    }
    result = await api.post("messenger", "/v1/deliveries/replay", body)
    count = result["replayed"]
    note = f"Replayed {count} deliver{'y' if count == 1 else 'ies'} ({chosen})."
    return redirect(request, _back(status, customer_id, destination_id), flash=note)


@router.post("/{delivery_id}/replay")
async def replay_one(
    request: Request,
    delivery_id: uuid.UUID,
    _: FormDep,
    api: ApiDep,
    back: Annotated[str, Form()] = "/deliveries",
) -> Response:
    try:
        await api.post("messenger", f"/v1/deliveries/{delivery_id}/replay")
        note = "Replay queued: it keeps its webhook-id, so the receiver can dedupe."
    except ApiError as error:
        if error.status not in (404, 409):
            raise
        note = f"Not replayed: {error.message}"
    return redirect(request, local_path(back, "/deliveries"), flash=note)
