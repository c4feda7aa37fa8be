"""Customers: search, and one customer's profile, stage history, timeline and messages."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console.clients import ApiError
from services.console.security import SessionDep
from services.console.web import ApiDep, render

router = APIRouter(prefix="/customers", tags=["console"])


@router.get("", response_class=HTMLResponse)
async def search(
    request: Request,
    _: SessionDep,
    api: ApiDep,
    q: str = "",
    stage: str = "",
    cursor: str = "",
) -> Response:
    lifecycle, page = await asyncio.gather(
        api.get("engine", "/v1/lifecycle"),
        api.get("engine", "/v1/customers", q=q.strip(), stage=stage, cursor=cursor, limit=50),
    )
    return render(
        request,
        "customers/list.html",
        q=q,
        stage=stage,
        stages=[s["name"] for s in lifecycle["stages"]],
        customers=page["items"],
        next_cursor=page["next_cursor"],
    )


def _stage_spans(history: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """(stage, from, until) for each stage the customer was in, oldest first."""
    spans: list[tuple[str, str, str | None]] = []
    for index, transition in enumerate(history):
        until = history[index + 1]["at"] if index + 1 < len(history) else None
        spans.append((transition["to"], transition["at"], until))
    return spans


@router.get("/{customer_id}", response_class=HTMLResponse)
async def profile(request: Request, customer_id: str, _: SessionDep, api: ApiDep) -> Response:
    path = quote(customer_id, safe="")
    try:
        customer = await api.get("engine", f"/v1/customers/{path}")
    except ApiError as error:
        if error.status != 404:
            raise
        return render(request, "customers/missing.html", status_code=404, customer_id=customer_id)
    timeline, sent = await asyncio.gather(
        api.get("engine", f"/v1/customers/{path}/timeline", limit=200),
        api.get("messenger", "/v1/deliveries", customer_id=customer["customer_key"], limit=20),
    )
    return render(
        request,
        "customers/detail.html",
        customer=customer,
        spans=_stage_spans(customer["stage_history"]),
        timeline=list(reversed(timeline["items"])),
        deliveries=sent["items"],
    )
