"""Sources: the storefronts' write keys (the key is shown once, when created)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.clients import ApiError
from services.console.security import FormDep, SessionDep
from services.console.web import ApiDep, redirect, render

router = APIRouter(prefix="/sources", tags=["console"])


async def _page(
    request: Request,
    api: ApiDep,
    *,
    created: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    source: str = "",
    status_code: int = 200,
) -> Response:
    keys = await api.get("ingest", "/v1/write-keys")
    return render(
        request,
        "sources.html",
        status_code=status_code,
        keys=keys["items"],
        created=created,
        errors=errors or {},
        source=source,
    )


@router.get("", response_class=HTMLResponse)
async def list_sources(request: Request, _: SessionDep, api: ApiDep) -> Response:
    return await _page(request, api)


@router.post("", response_class=HTMLResponse)
async def create_key(
    request: Request, _: FormDep, api: ApiDep, source: Annotated[str, Form()] = ""
) -> Response:
    try:
        created = await api.post("ingest", "/v1/write-keys", {"source": source.strip()})
    except ApiError as error:
        if error.status != 422:
            raise
        return await _page(
            request, api, errors={"source": [error.message]}, source=source, status_code=422
        )
    return await _page(request, api, created=created)


@router.post("/{key_id}/revoke")
async def revoke(request: Request, key_id: str, _: FormDep, api: ApiDep) -> Response:
    await api.delete("ingest", f"/v1/write-keys/{key_id}")
    return redirect(
        request, "/sources", flash="Write key revoked: the source's requests now get 401."
    )
