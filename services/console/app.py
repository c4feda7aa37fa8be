"""The console service: server-rendered pages (Jinja2, htmx for the live parts) over the
three services' public APIs. It owns no tables and reads no database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Final

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console.clients import LABELS, ApiError, Service
from services.console.context import ConsoleContext
from services.console.pages import (
    auth,
    customers,
    deliveries,
    destinations,
    overview,
    policy,
    rejected,
    rules,
    sources,
    suppressions,
    templates_page,
)
from services.console.security import SESSION_COOKIE, CsrfRefused, SignInRequired
from services.console.sessions import SessionStore
from services.console.settings import ConsoleSettings
from services.console.web import HERE, render
from shared.http.health import router as health_router

log = logging.getLogger(__name__)

SERVICE = "console"

#: Nothing is loaded from anywhere but this console; no page may be framed.
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "style-src 'self'; script-src 'self'; frame-src 'self'; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _ping(client: httpx.AsyncClient, service: Service) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        response = await client.get("/healthz")
        if response.status_code != 200:
            raise RuntimeError(f"{LABELS[service]} answered {response.status_code}")

    return check


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    cfg = settings or ConsoleSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        names: tuple[Service, ...] = ("ingest", "engine", "messenger")
        clients = {
            name: httpx.AsyncClient(
                base_url=cfg.base_url(name), timeout=cfg.console_api_timeout_seconds
            )
            for name in names
        }
        app.state.console = ConsoleContext(
            settings=cfg,
            sessions=SessionStore(idle=timedelta(hours=cfg.console_session_hours)),
            clients=clients,
        )
        app.state.readiness = {name: _ping(client, name) for name, client in clients.items()}
        log.info(
            "console started",
            extra={"port": cfg.console_port, **{n: cfg.base_url(n) for n in names}},
        )
        try:
            yield
        finally:
            app.state.stopping = True
            for client in clients.values():
                await client.aclose()
        log.info("console stopped")

    app = FastAPI(
        title="clm console",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.readiness = {}
    app.state.stopping = False

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path != "/healthz" and not request.url.path.startswith("/static"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        return _to_sign_in(request)

    @app.exception_handler(CsrfRefused)
    async def _csrf(request: Request, _: CsrfRefused) -> Response:
        return render(
            request,
            "error.html",
            status_code=403,
            title="This form has expired",
            message="The form was sent without this page's security token (an old tab, or "
            "another site). Reload the page and send it again.",
        )

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if exc.status == 401:
            # The token was changed or revoked since sign-in: sign in again.
            ctx: ConsoleContext = request.app.state.console
            ctx.sessions.end(request.cookies.get(SESSION_COOKIE, ""))
            return _to_sign_in(request, reason="expired")
        return render(
            request,
            "error.html",
            status_code=502 if exc.status >= 500 else exc.status,
            title="The request was refused" if exc.status < 500 else "A service is not answering",
            message=exc.message,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return render(
                request,
                "error.html",
                status_code=404,
                title="No such page",
                message=f"The console has no page at {request.url.path}.",
            )
        return render(
            request,
            "error.html",
            status_code=exc.status_code,
            title="Refused",
            message=str(exc.detail),
        )

    app.include_router(health_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for module in (
        auth,
        overview,
        rules,
        customers,
        deliveries,
        destinations,
        suppressions,
        policy,
        rejected,
        sources,
        templates_page,
    ):
        app.include_router(module.router)
    return app


def _to_sign_in(request: Request, *, reason: str | None = None) -> Response:
    target = "/sign-in" + (f"?reason={reason}" if reason else "")
    if request.method == "GET" and request.url.path != "/":
        joiner = "&" if reason else "?"
        target += f"{joiner}next={request.url.path}"
    if request.headers.get("HX-Request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
