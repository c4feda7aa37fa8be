"""The rules API: CRUD with immutable versions, simulation and stats (admin token)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.trigger_engine.context import EngineContext, EngineDep
from services.trigger_engine.core.rule_checks import RuleError, parse_rule
from services.trigger_engine.core.rules import Rule
from services.trigger_engine.lifecycle import repository as lifecycle_repo
from services.trigger_engine.rules import repository
from services.trigger_engine.rules.paths import check_paths
from services.trigger_engine.rules.schemas import (
    RuleOut,
    RulePatch,
    RuleStatsOut,
    RuleVersionOut,
    SimulationOut,
    SimulationRequest,
    Validation,
    unprocessable,
)
from services.trigger_engine.rules.simulate import run_simulation
from services.trigger_engine.runs.stats import rule_stats
from services.trigger_engine.send_policy import repository as policy_repo
from shared.db import transaction
from shared.errors import Unprocessable
from shared.http.auth import AdminDep
from shared.http.pages import Page, whole
from shared.http.schema import DocumentedAs

router = APIRouter(prefix="/v1/rules", tags=["rules"], dependencies=[AdminDep])

_EXAMPLE = json.loads(
    (Path(__file__).resolve().parents[1] / "examples" / "cart-abandon.json").read_text()
)
RuleBody = Annotated[
    dict[str, Any],
    DocumentedAs(Rule),
    Body(
        description="A rule (see the contract). Validated in full; every problem is listed.",
        openapi_examples={"cart-abandon": {"value": _EXAMPLE}},
    ),
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "no rule with this key"},
    422: {"description": "the rule is invalid; `errors` lists each problem with its location"},
}


async def _parse(session: AsyncSession, body: dict[str, Any]) -> Rule:
    """The rule, or a 422 listing every problem: structure, meaning and condition paths."""
    _, model = await lifecycle_repo.current(session)
    path_issues = check_paths(body)
    try:
        rule = parse_rule(body, stages=model.stage_names())
    except RuleError as error:
        raise unprocessable(RuleError([*error.issues, *path_issues])) from None
    if path_issues:
        raise unprocessable(RuleError(path_issues))
    return rule


def _changed(ctx: EngineContext) -> None:
    ctx.config.invalidate()


@router.get("", summary="List the rules (current versions)")
async def list_rules(ctx: EngineDep) -> Page[RuleOut]:
    async with ctx.sessions() as session:
        return whole([RuleOut.of(stored) for stored in await repository.list_current(session)])


@router.post(
    "/validate",
    summary="Check a rule without storing it (what POST and PUT would refuse, and why)",
    responses={422: _ERRORS[422]},
)
async def validate_rule(body: RuleBody, ctx: EngineDep) -> Validation:
    async with ctx.sessions() as session:
        rule = await _parse(session, body)
    return Validation(valid=True, rule=rule)


@router.post(
    "",
    status_code=201,
    summary="Create a rule (version 1)",
    responses={409: {"description": "a rule with this key exists"}, 422: _ERRORS[422]},
)
async def create_rule(body: RuleBody, ctx: EngineDep) -> RuleOut:
    async with transaction(ctx.sessions) as session:
        rule = await _parse(session, body)
        stored = await repository.create(session, rule, now=datetime.now(UTC))
    _changed(ctx)
    return RuleOut.of(stored)


@router.get("/{key}", summary="Get a rule (current version)", responses={404: _ERRORS[404]})
async def get_rule(key: str, ctx: EngineDep) -> RuleOut:
    async with ctx.sessions() as session:
        return RuleOut.of(await repository.get(session, key))


@router.put(
    "/{key}",
    summary="Change a rule: stores a new version; runs in flight stay on theirs",
    responses=_ERRORS,
)
async def update_rule(key: str, body: RuleBody, ctx: EngineDep) -> RuleOut:
    given = body.get("key", key)
    if given != key:
        raise Unprocessable(
            f"key: the body's key {given!r} differs from the path's {key!r}",
            details=[{"loc": "key", "message": f"must be {key!r}, the key in the path"}],
        )
    async with transaction(ctx.sessions) as session:
        rule = await _parse(session, {**body, "key": key})
        stored = await repository.update(session, rule, now=datetime.now(UTC))
    _changed(ctx)
    return RuleOut.of(stored)


@router.patch(
    "/{key}",
    summary="Enable or disable a rule (a new version when it changes)",
    responses={404: _ERRORS[404]},
)
async def patch_rule(key: str, body: RulePatch, ctx: EngineDep) -> RuleOut:
    async with transaction(ctx.sessions) as session:
        stored = await repository.get(session, key)
        if stored.rule.enabled == body.enabled:
            return RuleOut.of(stored)
        changed = stored.rule.model_copy(update={"enabled": body.enabled})
        stored = await repository.update(session, changed, now=datetime.now(UTC))
    _changed(ctx)
    return RuleOut.of(stored)


@router.delete(
    "/{key}",
    status_code=204,
    summary="Delete a rule; runs in flight exit at their next step",
    responses={404: _ERRORS[404]},
)
async def delete_rule(key: str, ctx: EngineDep) -> Response:
    async with transaction(ctx.sessions) as session:
        await repository.delete(session, key, now=datetime.now(UTC))
    _changed(ctx)
    return Response(status_code=204)


@router.get("/{key}/versions", summary="Every version of a rule", responses={404: _ERRORS[404]})
async def list_versions(key: str, ctx: EngineDep) -> Page[RuleVersionOut]:
    async with ctx.sessions() as session:
        found = await repository.versions(session, key)
    return whole(
        [
            RuleVersionOut(version=rule.version, created_at=created, rule=rule)
            for rule, created in found
        ]
    )


@router.post(
    "/{key}/simulate",
    summary="What the rule would have sent over stored history (nothing is sent)",
    responses=_ERRORS,
)
async def simulate_rule(
    key: str, ctx: EngineDep, body: SimulationRequest | None = None
) -> SimulationOut:
    request = body or SimulationRequest()
    async with ctx.sessions() as session:
        if request.rule is not None:
            rule = await _parse(session, {**request.rule, "key": key})
        else:
            rule = (await repository.get(session, key)).rule
        _, model = await lifecycle_repo.current(session)
        _, policy = await policy_repo.current(session)
        return await run_simulation(
            session,
            rule,
            model,
            start=request.from_,
            end=request.to,
            limit=ctx.settings.simulate_max_events,
            sample=request.sample,
            policy=policy,
        )


@router.get(
    "/{key}/stats",
    summary="Entered, sent, exited, held out, converted, and the holdout lift",
    responses={404: _ERRORS[404]},
)
async def get_stats(key: str, ctx: EngineDep) -> RuleStatsOut:
    async with ctx.sessions() as session:
        await repository.versions(session, key)  # 404 for a key that never existed
        return await rule_stats(session, key)
