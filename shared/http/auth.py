"""The admin bearer token that guards every ops API."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Unauthorized

_bearer = HTTPBearer(auto_error=False, description="The admin token (CLM_ADMIN_TOKEN)")


async def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    expected: str = request.app.state.admin_token
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing admin bearer token (Authorization: Bearer <token>)")
    if not hmac.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise Unauthorized("unknown admin token")


AdminDep = Depends(require_admin)
