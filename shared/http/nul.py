"""A NUL character in a path or query parameter is a client error (422), on every route.

PostgreSQL cannot store NUL in text, so an id with one would otherwise reach the database
and fail there as a 500. Checked once, before routing, so no endpoint can forget it.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import error_body
from shared.http.responses import JSONBytesResponse

MESSAGE = "path and query parameters must not contain NUL characters (%00)"


def has_nul(scope: Scope) -> bool:
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"\x00" in query or b"%00" in query


class RejectNulParameters:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and has_nul(scope):
            response = JSONBytesResponse(error_body("invalid", MESSAGE), status_code=422)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
