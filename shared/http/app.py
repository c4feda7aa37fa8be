"""The FastAPI application shell every service builds on."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from shared.errors import install_error_handlers
from shared.http.docs import install_docs
from shared.http.health import router as health_router
from shared.http.nul import RejectNulParameters
from shared.http.openapi import install_openapi
from shared.http.unavailable import UnavailableGuard
from shared.settings import ServiceSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *,
    title: str,
    description: str,
    settings: ServiceSettings,
    lifespan: Lifespan,
    request_dependencies: tuple[str, ...] = ("postgres",),
) -> FastAPI:
    """``request_dependencies`` name the readiness checks (``postgres``, ``kafka``) the
    service's requests wait on: when one stops answering, waiting requests get a 503."""
    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.admin_token = settings.require_admin_token()
    app.state.readiness = {}
    app.state.stopping = False
    install_error_handlers(app, retry_after=settings.retry_after_seconds)
    # Added last = runs first: NUL parameters are refused before any other work.
    app.add_middleware(
        UnavailableGuard,
        dependencies=request_dependencies,
        timeout=settings.unavailable_after_seconds,
        retry_after=settings.retry_after_seconds,
    )
    app.add_middleware(RejectNulParameters)
    app.include_router(health_router)
    install_docs(app)
    install_openapi(app)
    return app
