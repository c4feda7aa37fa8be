"""Who is signed in, and whether a form really came from our own page.

- The session cookie carries a random id only; ``httpOnly`` (no script reads it) and
  ``SameSite=Strict`` (no other site's page sends it).
- Every form and every htmx request carries the session's CSRF token (a hidden
  ``csrf_token`` field, or the ``X-CSRF-Token`` header htmx adds); a POST without the right
  one is refused with 403, whatever the cookie says.
- The sign-in form, before there is a session, is protected the same way by a token in a
  short-lived cookie of its own (double submit).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Annotated, Final

from fastapi import Depends, Request, Response

from services.console.context import ConsoleContext, ConsoleDep
from services.console.sessions import Session

SESSION_COOKIE: Final = "clm_console_session"
SIGN_IN_COOKIE: Final = "clm_console_sign_in"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"


class SignInRequired(Exception):
    """No live session: the handler sends the browser to the sign-in page."""


class CsrfRefused(Exception):
    """A state-changing request without the right token: the handler answers 403."""


def same_token(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def current_session(request: Request, ctx: ConsoleDep) -> Session:
    session = ctx.sessions.get(request.cookies.get(SESSION_COOKIE), now=datetime.now(UTC))
    if session is None:
        raise SignInRequired
    request.state.session = session
    return session


async def checked_session(request: Request, ctx: ConsoleDep) -> Session:
    """The session of a POST whose CSRF token matches it."""
    session = current_session(request, ctx)
    given = request.headers.get(CSRF_HEADER)
    if given is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not same_token(given, session.csrf):
        raise CsrfRefused
    return session


def set_cookie(
    response: Response,
    ctx: ConsoleContext,
    name: str,
    value: str,
    *,
    path: str,
    max_age: int | None = None,
) -> None:
    """httpOnly, SameSite=Strict, and Secure when the console is served over HTTPS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="strict",
        secure=ctx.settings.console_secure_cookies,
    )


SessionDep = Annotated[Session, Depends(current_session)]
"""A page: someone must be signed in."""
FormDep = Annotated[Session, Depends(checked_session)]
"""A form post (or htmx request): signed in, and the CSRF token matches."""
