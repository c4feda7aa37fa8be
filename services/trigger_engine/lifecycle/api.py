"""``GET/PUT /v1/lifecycle``: the ordered stage definitions (first match wins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ValidationError

from services.trigger_engine.context import EngineDep
from services.trigger_engine.core.lifecycle import LifecycleModel, StageDef, default_lifecycle
from services.trigger_engine.core.rule_checks import check_rule
from services.trigger_engine.lifecycle import repository
from services.trigger_engine.rules import repository as rules_repo
from shared.db import transaction
from shared.errors import Unprocessable
from shared.http.auth import AdminDep

router = APIRouter(prefix="/v1/lifecycle", tags=["lifecycle"], dependencies=[AdminDep])


class LifecycleOut(BaseModel):
    version: int
    stages: list[StageDef]
    reactivation_from: list[str]


def _out(version: int, model: LifecycleModel) -> LifecycleOut:
    return LifecycleOut(
        version=version, stages=model.stages, reactivation_from=model.reactivation_from
    )


LifecycleBody = Annotated[
    dict[str, Any],
    Body(
        description="Ordered stages, each with criteria on profile metrics (`metric`/`op`/"
        "`value`) or elapsed time (`since` + `at_least` or `less_than`); the last stage has "
        "no criteria.",
        openapi_examples={"default": {"value": default_lifecycle().model_dump(mode="json")}},
    ),
]


@router.get("", summary="The current lifecycle model")
async def get_lifecycle(ctx: EngineDep) -> LifecycleOut:
    async with ctx.sessions() as session:
        version, model = await repository.current(session)
    return _out(version, model)


@router.put(
    "",
    summary="Replace the lifecycle model (a new version)",
    responses={422: {"description": "invalid model, or live rules name stages it removes"}},
)
async def put_lifecycle(body: LifecycleBody, ctx: EngineDep) -> LifecycleOut:
    payload = {k: v for k, v in body.items() if k != "version"}
    try:
        model = LifecycleModel.model_validate(payload)
    except ValidationError as exc:
        details = [
            {
                "loc": ".".join(str(p) for p in e["loc"]) or "lifecycle",
                "message": str(e["msg"]).removeprefix("Value error, "),
            }
            for e in exc.errors(include_url=False)
        ]
        raise Unprocessable(
            "; ".join(f"{d['loc']}: {d['message']}" for d in details), details=details
        ) from None
    names = model.stage_names()
    async with transaction(ctx.sessions) as session:
        problems = [
            {
                "loc": f"rules.{stored.rule.key}." + ".".join(str(p) for p in issue.loc),
                "message": issue.message,
            }
            for stored in await rules_repo.list_current(session)
            for issue in check_rule(stored.rule, stages=names)
        ]
        if problems:
            raise Unprocessable(
                "live rules do not fit this model: "
                + "; ".join(f"{p['loc']}: {p['message']}" for p in problems),
                details=problems,
            )
        version = await repository.store(session, model, now=datetime.now(UTC))
    ctx.config.invalidate()
    return _out(version, model)
