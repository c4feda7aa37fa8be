"""``GET/PUT /v1/lifecycle``: the ordered stage definitions (first match wins);
``GET /v1/lifecycle/reevaluation``: how far existing customers have followed the newest one."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from services.trigger_engine.context import EngineDep
from services.trigger_engine.core.lifecycle import LifecycleModel, StageDef, default_lifecycle
from services.trigger_engine.core.rule_checks import check_rule
from services.trigger_engine.lifecycle import passes, repository
from services.trigger_engine.rules import repository as rules_repo
from shared.db import transaction
from shared.errors import Unprocessable
from shared.http.auth import AdminDep
from shared.http.schema import DocumentedAs

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
    DocumentedAs(LifecycleModel),
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
    model = repository.LIFECYCLE.parse(body)
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


PassStatus = Literal["pending", "running", "finished", "superseded"]


class PassOut(BaseModel):
    version: int = Field(description="the lifecycle model version customers are moved to")
    status: PassStatus = Field(
        description="pending: not started yet; running; finished; superseded: a newer model "
        "was stored before it finished (its pass took over)"
    )
    customers: int = Field(description="customers re-evaluated so far")
    total: int | None = Field(description="customers stored when the pass started")
    transitions: int = Field(description="stage transitions the pass made")
    started_at: datetime | None
    updated_at: datetime | None
    finished_at: datetime | None


class ReevaluationOut(PassOut):
    earlier: list[PassOut] = Field(description="passes of earlier versions, newest first")


def _pass_out(found: passes.LifecyclePass, *, newest: int) -> PassOut:
    status: PassStatus = "running" if found.version == newest else "superseded"
    if found.finished_at is not None:
        status = "finished"
    return PassOut(
        version=found.version,
        status=status,
        customers=found.customers,
        total=found.total,
        transitions=found.transitions,
        started_at=found.started_at,
        updated_at=found.updated_at,
        finished_at=found.finished_at,
    )


@router.get(
    "/reevaluation",
    summary="How far existing customers have followed the newest lifecycle model",
    description="After every `PUT` the engine re-evaluates each stored customer's stage and "
    "stage timer under the new model, in the background (a `model` stage transition where "
    "it moves someone). Version 0 is the built-in default: nothing to re-evaluate.",
)
async def get_reevaluation(ctx: EngineDep) -> ReevaluationOut:
    async with ctx.sessions() as session:
        newest = await repository.latest_version(session)
        found = await passes.recent(session, limit=11)
    mine = [p for p in found if p.version == newest]
    current = (
        _pass_out(mine[0], newest=newest)
        if mine
        else PassOut(
            version=newest,
            status="finished" if newest == 0 else "pending",
            customers=0,
            total=None,
            transitions=0,
            started_at=None,
            updated_at=None,
            finished_at=None,
        )
    )
    earlier = [_pass_out(p, newest=newest) for p in found if p.version != newest][:10]
    return ReevaluationOut(**current.model_dump(), earlier=earlier)
