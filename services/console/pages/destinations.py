"""Destinations: where actions go; create, switch on and off, test send, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.clients import ApiError
from services.console.forms import CHANNELS
from services.console.security import FormDep, SessionDep
from services.console.web import ApiDep, redirect, render

router = APIRouter(prefix="/destinations", tags=["console"])


async def _page(
    request: Request,
    api: ApiDep,
    *,
    errors: dict[str, list[str]] | None = None,
    values: dict[str, str] | None = None,
    created: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    listed = await api.get("messenger", "/v1/destinations")
    return render(
        request,
        "destinations.html",
        status_code=status_code,
        destinations=listed["items"],
        channels=CHANNELS,
        errors=errors or {},
        values=values or {"channel": "email", "rate_limit_per_second": "50"},
        created=created,
    )


@router.get("", response_class=HTMLResponse)
async def list_destinations(request: Request, _: SessionDep, api: ApiDep) -> Response:
    return await _page(request, api)


@router.post("", response_class=HTMLResponse)
async def create_destination(
    request: Request,
    _: FormDep,
    api: ApiDep,
    channel: Annotated[str, Form()] = "email",
    url: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    secret: Annotated[str, Form()] = "",
    rate_limit_per_second: Annotated[str, Form()] = "50",
) -> Response:
    values = {
        "channel": channel,
        "url": url,
        "name": name,
        "secret": secret,
        "rate_limit_per_second": rate_limit_per_second,
    }
    body: dict[str, object] = {"channel": channel, "url": url.strip(), "name": name.strip() or None}
    if secret.strip():
        body["secret"] = secret.strip()
    try:
        body["rate_limit_per_second"] = float(rate_limit_per_second or 50)
    except ValueError:
        errors = {"rate_limit_per_second": ["must be a number of sends per second"]}
        return await _page(request, api, errors=errors, values=values, status_code=422)
    try:
        created = await api.post("messenger", "/v1/destinations", body)
    except ApiError as error:
        if error.status != 422:
            raise
        errors = error.by_field() or {"url": [error.message]}
        return await _page(request, api, errors=errors, values=values, status_code=422)
    return await _page(request, api, created=created)


@router.post("/{destination_id}/enabled", response_class=HTMLResponse)
async def set_enabled(
    request: Request,
    destination_id: str,
    _: FormDep,
    api: ApiDep,
    enabled: Annotated[str, Form()] = "",
) -> Response:
    await api.patch(
        "messenger", f"/v1/destinations/{destination_id}", {"enabled": enabled == "true"}
    )
    state = "enabled" if enabled == "true" else "disabled"
    return redirect(request, "/destinations", flash=f"Destination {destination_id} {state}.")


@router.post("/{destination_id}/test", response_class=HTMLResponse)
async def test_send(request: Request, destination_id: str, _: FormDep, api: ApiDep) -> Response:
    result = await api.post("messenger", f"/v1/destinations/{destination_id}/test")
    if request.headers.get("HX-Request"):
        return render(request, "_test_result.html", result=result)
    outcome = "answered " + str(result["status_code"]) if result["status_code"] else "failed"
    return redirect(
        request,
        "/destinations",
        flash=f"Test send to {destination_id} {outcome}"
        + (f": {result['error']}" if result["error"] else "."),
    )


@router.post("/{destination_id}/delete")
async def delete_destination(
    request: Request, destination_id: str, _: FormDep, api: ApiDep
) -> Response:
    await api.delete("messenger", f"/v1/destinations/{destination_id}")
    return redirect(request, "/destinations", flash=f"Destination {destination_id} deleted.")
