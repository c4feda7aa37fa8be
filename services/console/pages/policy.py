"""The send policy: consent per channel, frequency caps and quiet hours."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console import forms
from services.console.clients import ApiError
from services.console.security import FormDep, SessionDep
from services.console.web import ApiDep, redirect, render

router = APIRouter(prefix="/send-policy", tags=["console"])


def _page(
    request: Request,
    *,
    values: dict[str, str],
    version: int | None,
    errors: forms.Errors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "policy.html",
        status_code=status_code,
        values=values,
        version=version,
        errors=errors or {},
        channels=forms.CHANNELS,
    )


@router.get("", response_class=HTMLResponse)
async def show_policy(request: Request, _: SessionDep, api: ApiDep) -> Response:
    policy = await api.get("engine", "/v1/send-policy")
    return _page(request, values=forms.form_from_policy(policy), version=policy["version"])


@router.post("", response_class=HTMLResponse)
async def save_policy(request: Request, _: FormDep, api: ApiDep) -> Response:
    values = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    body, errors = forms.policy_from_form(values)
    if not errors:
        try:
            saved = await api.put("engine", "/v1/send-policy", body)
        except ApiError as error:
            if error.status != 422:
                raise
            errors = forms.place_policy_errors(error.by_field() or {"": [error.message]})
        else:
            note = f"Send policy saved as version {saved['version']}; it applies to the next send."
            return redirect(request, "/send-policy", flash=note)
    return _page(request, values=values, version=None, errors=errors, status_code=422)
