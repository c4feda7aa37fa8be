"""Write keys, managed by an admin: created (the key is shown once), listed, revoked."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from services.ingest.context import IngestDep
from services.ingest.writekeys import repository
from shared.db import transaction
from shared.errors import NotFound
from shared.http.auth import AdminDep
from shared.http.pages import Page, whole

router = APIRouter(prefix="/v1/write-keys", tags=["write keys"], dependencies=[AdminDep])


class WriteKeyCreate(BaseModel):
    source: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="The storefront this key belongs to, e.g. shop-eu",
    )


class WriteKeyCreated(BaseModel):
    id: uuid.UUID
    source: str
    key: str = Field(description="The write key. Shown only in this response.")
    created_at: datetime


class WriteKeyOut(BaseModel):
    id: uuid.UUID
    source: str
    key_prefix: str = Field(description="The first characters of the key, to recognise it")
    created_at: datetime


@router.post("", status_code=201, summary="Create a write key for a source")
async def create_write_key(body: WriteKeyCreate, ctx: IngestDep) -> WriteKeyCreated:
    async with transaction(ctx.sessions) as session:
        created = await repository.create(session, body.source)
    return WriteKeyCreated(
        id=created.id, source=created.source, key=created.key, created_at=created.created_at
    )


@router.get("", summary="List active write keys (never the keys themselves)")
async def list_write_keys(ctx: IngestDep) -> Page[WriteKeyOut]:
    async with ctx.sessions() as session:
        rows = await repository.list_active(session)
    return whole(
        [
            WriteKeyOut(id=r.id, source=r.source, key_prefix=r.key_prefix, created_at=r.created_at)
            for r in rows
        ]
    )


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke a write key",
    responses={404: {"description": "no active write key with this id"}},
)
async def revoke_write_key(key_id: uuid.UUID, ctx: IngestDep) -> Response:
    async with transaction(ctx.sessions) as session:
        revoked = await repository.revoke(session, key_id)
    if not revoked:
        raise NotFound(f"no active write key with id {key_id}")
    ctx.write_keys.clear()
    return Response(status_code=204)
