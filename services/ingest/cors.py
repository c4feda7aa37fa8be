"""CORS for browser storefronts, on the Tracking API routes only.

A storefront page calling ``/v1/track`` from the shopper's browser needs the origins of the
shop (``CLM_CORS_ORIGINS``) allowed: a preflight ``OPTIONS`` is answered and the response
headers name the origin. The admin routes (``/v1/write-keys``) never answer cross-origin
requests: a browser has no business calling them from a shop's page.
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

#: Request headers a Segment/RudderStack browser client may send.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Content-Encoding")


class TrackingCORS:
    """``CORSMiddleware`` for the requests to ``paths``; any other request passes through."""

    def __init__(self, app: ASGIApp, *, origins: Collection[str], paths: Collection[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=("POST",),
            allow_headers=ALLOWED_HEADERS,
            expose_headers=("Retry-After",),
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in self.paths:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
