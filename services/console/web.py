"""Rendering pages: the templates, the signed-in person's API handle, redirects, flashes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.console import charts, formats
from services.console.clients import Api
from services.console.context import ConsoleDep
from services.console.security import CSRF_FIELD, CSRF_HEADER, SessionDep
from services.console.sessions import Session

HERE: Final = Path(__file__).resolve().parent

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(
    csrf_field=CSRF_FIELD, csrf_header=CSRF_HEADER, charts=charts, fmt=formats
)
templates.env.filters.update(
    when=formats.when, ago=formats.ago, number=formats.number, percent=formats.percent
)


def render(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    session: Session | None = getattr(request.state, "session", None)
    flashes: list[str] = []
    if session is not None:
        flashes, session.flashes = session.flashes, []
    return templates.TemplateResponse(
        request,
        template,
        {"session": session, "flashes": flashes, "path": request.url.path, **context},
        status_code=status_code,
    )


def local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path of this console, else ``default`` (never another host)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return default


def redirect(request: Request, url: str, *, flash: str | None = None) -> Response:
    """After a form post: back to a page (htmx follows ``HX-Redirect``)."""
    session: Session | None = getattr(request.state, "session", None)
    if flash and session is not None:
        session.flashes.append(flash)
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


def api_for(session: SessionDep, ctx: ConsoleDep) -> Api:
    return Api(ctx.clients, session.token)


ApiDep = Annotated[Api, Depends(api_for)]
