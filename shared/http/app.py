"""The FastAPI application shell every service builds on."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from shared.errors import install_error_handlers
from shared.http.docs import install_docs
from shared.http.health import router as health_router
from shared.settings import ServiceSettings

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_service_app(
    *, title: str, description: str, settings: ServiceSettings, lifespan: Lifespan
) -> FastAPI:
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
    install_error_handlers(app)
    app.include_router(health_router)
    install_docs(app)
    return app
