"""Sign in with the admin token, sign out; the rule language reference."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.clients import ApiError, token_is_valid
from services.console.context import ConsoleDep
from services.console.security import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    FormDep,
    SessionDep,
    same_token,
    set_cookie,
)
from services.console.web import local_path, render

router = APIRouter(tags=["console"])

#: ``docs/rules.md`` of the repository, when the console runs from a checkout.
RULES_REFERENCE: Final = Path(__file__).resolve().parents[3] / "docs" / "rules.md"
_REASONS: Final = {
    "expired": "The admin token no longer works (it was changed): sign in again.",
    "signed_out": "Signed out.",
}


def _sign_in_page(
    request: Request, *, nxt: str, error: str | None = None, notice: str | None = None
) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "sign_in.html",
        status_code=401 if error else 200,
        sign_in_token=token,
        next=nxt,
        error=error,
        notice=notice,
    )
    ctx = request.app.state.console
    set_cookie(response, ctx, SIGN_IN_COOKIE, token, max_age=900, path="/sign-in")
    return response


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(
    request: Request, next: str | None = None, reason: str | None = None
) -> Response:
    return _sign_in_page(request, nxt=local_path(next), notice=_REASONS.get(reason or ""))


@router.post("/sign-in")
async def sign_in(
    request: Request,
    ctx: ConsoleDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    nxt = local_path(next)
    expected = request.cookies.get(SIGN_IN_COOKIE)
    if expected is None or not same_token(csrf_token, expected):
        return _sign_in_page(
            request, nxt=nxt, error="The sign-in form expired; enter the token again."
        )
    token = token.strip()
    if not token:
        return _sign_in_page(request, nxt=nxt, error="Enter the admin token (CLM_ADMIN_TOKEN).")
    try:
        valid = await token_is_valid(ctx.clients, token)
    except ApiError as error:
        return _sign_in_page(request, nxt=nxt, error=f"Cannot check the token: {error.message}")
    if not valid:
        return _sign_in_page(
            request,
            nxt=nxt,
            error="This is not the admin token. `make run` prints it; it is also in "
            ".clm/admin_token, or CLM_ADMIN_TOKEN where the services run.",
        )
    session = ctx.sessions.create(token, now=datetime.now(UTC))
    response = RedirectResponse(nxt, status_code=303)
    set_cookie(response, ctx, SESSION_COOKIE, session.id, path="/")
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: FormDep, ctx: ConsoleDep) -> Response:
    ctx.sessions.end(session.id)
    response = RedirectResponse("/sign-in?reason=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/help/rules", response_class=HTMLResponse)
async def rules_reference(request: Request, _: SessionDep) -> Response:
    text = RULES_REFERENCE.read_text(encoding="utf-8") if RULES_REFERENCE.is_file() else None
    return render(request, "help_rules.html", reference=text)
