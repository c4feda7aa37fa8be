"""Managed templates: the list, a new one, and a preview for a sample or a real customer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console.clients import ApiError
from services.console.security import FormDep, SessionDep
from services.console.web import ApiDep, redirect, render

router = APIRouter(prefix="/templates", tags=["console"])


async def _page(
    request: Request,
    api: ApiDep,
    *,
    errors: dict[str, list[str]] | None = None,
    values: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    listed = await api.get("messenger", "/v1/templates")
    return render(
        request,
        "templates.html",
        status_code=status_code,
        templates=listed["items"],
        errors=errors or {},
        values=values or {},
    )


@router.get("", response_class=HTMLResponse)
async def list_templates(request: Request, _: SessionDep, api: ApiDep) -> Response:
    return await _page(request, api)


@router.post("", response_class=HTMLResponse)
async def create_template(
    request: Request,
    _: FormDep,
    api: ApiDep,
    name: Annotated[str, Form()] = "",
    subject: Annotated[str, Form()] = "",
    text: Annotated[str, Form()] = "",
    html: Annotated[str, Form()] = "",
) -> Response:
    values = {"name": name, "subject": subject, "text": text, "html": html}
    body = {"name": name.strip(), **{k: v or None for k, v in values.items() if k != "name"}}
    try:
        await api.post("messenger", "/v1/templates", body)
    except ApiError as error:
        if error.status not in (409, 422):
            raise
        errors = error.by_field()
        if not errors:
            part = error.message.split(":", 1)[0]
            field = part if part in ("subject", "text", "html") else "name"
            errors = {field: [error.message]}
        return await _page(request, api, errors=errors, values=values, status_code=422)
    return redirect(request, "/templates", flash=f"Template {name.strip()} created.")


@router.post("/{name}/preview", response_class=HTMLResponse)
async def preview(
    request: Request,
    name: str,
    _: FormDep,
    api: ApiDep,
    customer_id: Annotated[str, Form()] = "",
) -> Response:
    body = {"customer_id": customer_id.strip()} if customer_id.strip() else {}
    try:
        result = await api.post("messenger", f"/v1/templates/{name}/preview", body)
    except ApiError as error:
        if error.status not in (404, 422):
            raise
        return render(request, "_preview.html", result=None, error=error.message, name=name)
    return render(request, "_preview.html", result=result, error=None, name=name)
