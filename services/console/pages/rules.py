"""Rules: the list with stats and an enable switch, the editor with live validation,
a rule's versions and their differences, and its backtest."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from services.console import forms
from services.console.clients import Api, ApiError
from services.console.diff import rule_diff
from services.console.security import FormDep, SessionDep
from services.console.web import ApiDep, redirect, render

router = APIRouter(prefix="/rules", tags=["console"])


async def _stats(api: Api, key: str) -> dict[str, Any] | None:
    try:
        stats: dict[str, Any] = await api.get("engine", f"/v1/rules/{key}/stats")
    except ApiError:
        return None
    return stats


async def _stages(api: Api) -> list[str]:
    lifecycle = await api.get("engine", "/v1/lifecycle")
    return [stage["name"] for stage in lifecycle["stages"]]


@router.get("", response_class=HTMLResponse)
async def list_rules(request: Request, _: SessionDep, api: ApiDep) -> Response:
    rules = (await api.get("engine", "/v1/rules"))["items"]
    stats = await asyncio.gather(*(_stats(api, rule["key"]) for rule in rules))
    return render(request, "rules/list.html", rows=list(zip(rules, stats, strict=True)))


async def _editor(
    request: Request,
    api: Api,
    *,
    values: dict[str, str],
    key: str | None,
    errors: forms.Errors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "rules/edit.html",
        status_code=status_code,
        values=values,
        key=key,
        errors=errors or {},
        stages=await _stages(api),
        trigger_types=forms.TRIGGER_TYPES,
    )


@router.get("/new", response_class=HTMLResponse)
async def new_rule(request: Request, _: SessionDep, api: ApiDep) -> Response:
    return await _editor(request, api, values=forms.form_from_rule(forms.NEW_RULE), key=None)


@router.get("/{key}/edit", response_class=HTMLResponse)
async def edit_rule(request: Request, key: str, _: SessionDep, api: ApiDep) -> Response:
    rule = await api.get("engine", f"/v1/rules/{key}")
    return await _editor(request, api, values=forms.form_from_rule(rule), key=key)


async def _form(request: Request) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


async def _check(api: Api, values: dict[str, str], key: str | None) -> forms.Errors:
    """Problems with the form's rule: the boxes that do not parse, then the engine's 422."""
    body, errors = forms.rule_from_form(values)
    if key is not None:
        body["key"] = key
    if errors:
        return errors
    try:
        await api.post("engine", "/v1/rules/validate", body)
    except ApiError as error:
        if error.status != 422:
            raise
        return forms.place_rule_errors(error.by_field() or {"": [error.message]})
    return {}


_EDITOR_FIELDS = (
    "",
    "key",
    "name",
    "trigger_type",
    "trigger_event",
    "trigger_stage",
    "trigger_from",
    "trigger_to",
    "trigger_for",
    "trigger_where",
    "audience",
    "steps",
    "exit_when",
    "reentry",
    "holdout_percent",
    "goal_event",
    "goal_within",
    "goal_where",
    "max_event_age",
)
"""Every field of the editor with a message list (the live check refreshes them all)."""


@router.post("/validate", response_class=HTMLResponse)
async def validate(request: Request, _: FormDep, api: ApiDep) -> Response:
    """The editor's live check (htmx): every field's messages, swapped in out of band."""
    values = await _form(request)
    key = values.get("editing") or None
    errors = await _check(api, values, key)
    return render(request, "rules/_errors.html", errors=errors, fields=_EDITOR_FIELDS)


async def _save(request: Request, api: Api, key: str | None) -> Response:
    values = await _form(request)
    body, errors = forms.rule_from_form(values)
    if not errors:
        try:
            if key is None:
                saved = await api.post("engine", "/v1/rules", body)
            else:
                saved = await api.put("engine", f"/v1/rules/{key}", {**body, "key": key})
        except ApiError as error:
            if error.status not in (409, 422):
                raise
            field_errors = error.by_field() or {
                "key" if error.status == 409 else "": [error.message]
            }
            errors = forms.place_rule_errors(field_errors)
        else:
            verb = "created" if key is None else f"saved as version {saved['version']}"
            return redirect(request, f"/rules/{saved['key']}", flash=f"Rule {saved['key']} {verb}.")
    return await _editor(request, api, values=values, key=key, errors=errors, status_code=422)


@router.post("")
async def create_rule(request: Request, _: FormDep, api: ApiDep) -> Response:
    return await _save(request, api, None)


@router.post("/{key}")
async def update_rule(request: Request, key: str, _: FormDep, api: ApiDep) -> Response:
    return await _save(request, api, key)


@router.get("/{key}", response_class=HTMLResponse)
async def rule_detail(
    request: Request,
    key: str,
    _: SessionDep,
    api: ApiDep,
    compare: int | None = None,
) -> Response:
    rule, versions, stats = await asyncio.gather(
        api.get("engine", f"/v1/rules/{key}"),
        api.get("engine", f"/v1/rules/{key}/versions"),
        _stats(api, key),
    )
    history = versions["items"]
    diffs = {
        later["version"]: rule_diff(earlier["rule"], later["rule"])
        for earlier, later in itertools.pairwise(history)
    }
    shown = compare if compare in diffs else (history[-1]["version"] if len(history) > 1 else None)
    today = datetime.now(UTC).date()
    return render(
        request,
        "rules/detail.html",
        rule=rule,
        stats=stats,
        versions=list(reversed(history)),
        diffs=diffs,
        shown=shown,
        backtest_from=(today - timedelta(days=7)).isoformat(),
        backtest_to=today.isoformat(),
    )


@router.post("/{key}/enabled", response_class=HTMLResponse)
async def set_enabled(
    request: Request,
    key: str,
    _: FormDep,
    api: ApiDep,
    enabled: Annotated[str, Form()] = "",
) -> Response:
    rule = await api.patch("engine", f"/v1/rules/{key}", {"enabled": enabled == "true"})
    if request.headers.get("HX-Request"):
        return render(request, "rules/_switch.html", rule=rule)
    state = "enabled" if rule["enabled"] else "disabled"
    return redirect(request, "/rules", flash=f"Rule {key} {state}.")


@router.post("/{key}/delete")
async def delete_rule(request: Request, key: str, _: FormDep, api: ApiDep) -> Response:
    await api.delete("engine", f"/v1/rules/{key}")
    return redirect(request, "/rules", flash=f"Rule {key} deleted; runs in flight exit.")


def _day_start(value: str, *, end: bool = False) -> str | None:
    try:
        day = datetime.fromisoformat(value).date()
    except ValueError:
        return None
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=int(end))
    return moment.isoformat()


@router.post("/{key}/backtest", response_class=HTMLResponse)
async def backtest(
    request: Request,
    key: str,
    _: FormDep,
    api: ApiDep,
    start: Annotated[str, Form(alias="from")] = "",
    end: Annotated[str, Form(alias="to")] = "",
) -> Response:
    since, until = _day_start(start), _day_start(end, end=True)
    error = None
    result = None
    if since is None or until is None:
        error = "Give both days as YYYY-MM-DD."
    elif since >= until:
        error = "The first day must come before the last."
    else:
        try:
            result = await api.post(
                "engine", f"/v1/rules/{key}/simulate", {"from": since, "to": until, "sample": 50}
            )
        except ApiError as exc:
            if exc.status >= 500:
                raise
            error = exc.message
    return render(
        request, "rules/_backtest.html", result=result, error=error, per_day=_per_day(result)
    )


def _per_day(result: dict[str, Any] | None) -> list[tuple[str, float]]:
    """Every day of the window, those without sends at zero."""
    if result is None:
        return []
    counts = {entry["day"]: entry["sent"] for entry in result.get("sends_per_day", [])}
    first = datetime.fromisoformat(result["from"]).date()
    last = (datetime.fromisoformat(result["to"]) - timedelta(microseconds=1)).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [(day.isoformat(), float(counts.get(day.isoformat(), 0))) for day in days]
