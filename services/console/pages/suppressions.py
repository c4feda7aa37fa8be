"""Suppressions: who never receives a send on a channel; add one, lift one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.clients import ApiError
from services.console.forms import CHANNELS
from services.console.security import FormDep, SessionDep
from services.console.web import ApiDep, redirect, render

router = APIRouter(prefix="/suppressions", tags=["console"])


async def _page(
    request: Request,
    api: ApiDep,
    *,
    channel: str = "",
    cursor: str = "",
    errors: dict[str, list[str]] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    page = await api.get(
        "messenger",
        "/v1/suppressions",
        channel=channel if channel in CHANNELS else "",
        cursor=cursor,
        limit=100,
    )
    return render(
        request,
        "suppressions.html",
        status_code=status_code,
        suppressions=page["items"],
        next_cursor=page["next_cursor"],
        channel=channel,
        channels=CHANNELS,
        errors=errors or {},
        values=values or {"channel": "email"},
    )


@router.get("", response_class=HTMLResponse)
async def list_suppressions(
    request: Request, _: SessionDep, api: ApiDep, channel: str = "", cursor: str = ""
) -> Response:
    return await _page(request, api, channel=channel, cursor=cursor)


@router.post("", response_class=HTMLResponse)
async def add_suppression(
    request: Request,
    _: FormDep,
    api: ApiDep,
    channel: Annotated[str, Form()] = "email",
    who: Annotated[str, Form()] = "",
    kind: Annotated[str, Form()] = "customer_id",
    note: Annotated[str, Form()] = "",
) -> Response:
    values = {"channel": channel, "who": who, "kind": kind, "note": note}
    if not who.strip():
        errors = {"who": ["enter a customer id, or an address with 'address' chosen"]}
        return await _page(request, api, errors=errors, values=values, status_code=422)
    body: dict[str, object] = {"channel": channel, "reason": "manual", "note": note or None}
    body["address" if kind == "address" else "customer_id"] = who.strip()
    try:
        await api.post("messenger", "/v1/suppressions", body)
    except ApiError as error:
        if error.status != 422:
            raise
        errors = {"who": [error.message]}
        return await _page(request, api, errors=errors, values=values, status_code=422)
    return redirect(request, "/suppressions", flash=f"{who.strip()} suppressed on {channel}.")


@router.post("/{suppression_id}/delete")
async def lift(request: Request, suppression_id: str, _: FormDep, api: ApiDep) -> Response:
    await api.delete("messenger", f"/v1/suppressions/{suppression_id}")
    return redirect(request, "/suppressions", flash="Suppression lifted.")
