"""``/v1/templates``: optional managed templates (admin)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Path, Response
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from services.messenger.context import MessengerDep
from services.messenger.delivery.templates import Part, RenderError, TemplateSource, render
from services.messenger.templates_store import repository
from services.messenger.templates_store.models import Template
from services.messenger.templates_store.preview import SAMPLE_DATA, latest_data
from services.messenger.templates_store.schemas import (
    NAME_PATTERN,
    PreviewIn,
    PreviewOut,
    TemplateCreate,
    TemplateIn,
    TemplateOut,
)
from shared.db import transaction
from shared.errors import Conflict, NotFound, Unprocessable
from shared.http.auth import AdminDep
from shared.http.pages import Page, whole

router = APIRouter(prefix="/v1/templates", tags=["templates"], dependencies=[AdminDep])

Responses = dict[int | str, dict[str, Any]]

_NOT_FOUND: Responses = {404: {"description": "no template with this name"}}
_INVALID: Responses = {422: {"description": "no part given, or a part does not compile"}}
NamePath = Path(pattern=NAME_PATTERN)


def _out(row: Template) -> TemplateOut:
    return TemplateOut(
        name=row.name,
        subject=row.subject,
        text=row.text,
        html=row.html,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def compiled(body: TemplateIn) -> TemplateSource:
    """The template, if every part compiles in the sandbox (variables are not checked: they
    come with each send)."""
    try:
        source = TemplateSource(subject=body.subject, text=body.text, html=body.html)
    except ValidationError as exc:
        raise Unprocessable(exc.errors()[0]["msg"]) from None
    parts: tuple[Part, ...] = ("subject", "text", "html")
    for part in parts:
        text = getattr(source, part)
        if text is None:
            continue
        result = render(TemplateSource(**{part: text}), {})
        if isinstance(result, RenderError) and result.kind == "syntax":
            raise Unprocessable(
                f"{part}: {result.message}", code="template_syntax", details={"part": part}
            )
    return source


@router.post(
    "",
    status_code=201,
    summary="Create a managed template",
    responses={409: {"description": "a template with this name exists"}, **_INVALID},
)
async def create_template(body: TemplateCreate, ctx: MessengerDep) -> TemplateOut:
    source = await asyncio.to_thread(compiled, body)  # a hostile template burns CPU
    try:
        async with transaction(ctx.sessions) as session:
            row = await repository.create(session, body.name, source, now=datetime.now(UTC))
    except IntegrityError:
        raise Conflict(f"template {body.name!r} exists; PUT replaces it") from None
    return _out(row)


@router.get("", summary="List managed templates")
async def list_templates(ctx: MessengerDep) -> Page[TemplateOut]:
    async with ctx.sessions() as session:
        return whole([_out(r) for r in await repository.list_all(session)])


@router.get("/{name}", summary="Get a managed template", responses=_NOT_FOUND)
async def get_template(ctx: MessengerDep, name: str = NamePath) -> TemplateOut:
    async with ctx.sessions() as session:
        row = await repository.get(session, name)
    if row is None:
        raise NotFound(f"no template named {name!r}")
    return _out(row)


@router.post(
    "/{name}/preview",
    summary="Render a template for a sample or a real customer (nothing is sent)",
    responses={
        **_NOT_FOUND,
        422: {"description": "the template fails to render with this data (part, kind)"},
    },
)
async def preview_template(
    ctx: MessengerDep, body: PreviewIn | None = None, name: str = NamePath
) -> PreviewOut:
    request = body or PreviewIn()
    async with ctx.sessions() as session:
        row = await repository.get(session, name)
        if row is None:
            raise NotFound(f"no template named {name!r}")
        data, source = request.data, "given"
        if data is None and request.customer_id is not None:
            data, source = await latest_data(session, request.customer_id), "customer"
            if data is None:
                raise NotFound(
                    f"no delivery to customer {request.customer_id!r} to preview with; "
                    "leave customer_id out for the sample customer"
                )
        if data is None:
            data, source = SAMPLE_DATA, "sample"
    context = {k: v for k, v in data.items() if k != "rendered"}
    result = await asyncio.to_thread(render, repository.source_of(row), context)
    if isinstance(result, RenderError):
        raise Unprocessable(
            f"{result.part}: {result.message}",
            code=f"template_{result.kind}",
            details={"part": result.part, "kind": result.kind},
        )
    return PreviewOut(
        subject=result.subject,
        text=result.text,
        html=result.html,
        source=source,
        data=context,
    )


@router.put("/{name}", summary="Replace a managed template", responses={**_NOT_FOUND, **_INVALID})
async def replace_template(
    body: TemplateIn, ctx: MessengerDep, name: str = NamePath
) -> TemplateOut:
    source = await asyncio.to_thread(compiled, body)  # a hostile template burns CPU
    async with transaction(ctx.sessions) as session:
        row = await repository.get(session, name, for_update=True)
        if row is None:
            raise NotFound(f"no template named {name!r}")
        row = await repository.replace(session, row, source, now=datetime.now(UTC))
    return _out(row)


@router.delete(
    "/{name}",
    status_code=204,
    summary="Delete a managed template (sends naming it then pass the name through)",
    responses=_NOT_FOUND,
)
async def delete_template(ctx: MessengerDep, name: str = NamePath) -> Response:
    async with transaction(ctx.sessions) as session:
        removed = await repository.remove(session, name)
    if not removed:
        raise NotFound(f"no template named {name!r}")
    return Response(status_code=204)
