"""Response shapes of ``GET /v1/rejected``."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from services.ingest.models import RejectedInput


class RejectedOut(BaseModel):
    id: uuid.UUID
    rejected_at: datetime
    source: str | None = Field(description="the write key's source, when known")
    origin: str = Field(description="'http', or the Kafka topic the record came from")
    partition: int | None
    offset: int | None
    index: int | None = Field(description="index within a batch, when any")
    code: str = Field(description="invalid_message, invalid_json, message_too_large, …")
    reason: str = Field(description="the first problem, as the sender was told")
    errors: list[str] = Field(description="every problem found, one sentence each")
    body: str = Field(description="the rejected input as received (UTF-8, at most 64 KB)")

    @classmethod
    def of(cls, row: RejectedInput) -> RejectedOut:
        return cls(
            id=row.id,
            rejected_at=row.rejected_at,
            source=row.source,
            origin=row.origin,
            partition=row.partition,
            offset=row.offset,
            index=row.index,
            code=row.code,
            reason=row.reason,
            errors=row.errors,
            body=row.payload,
        )
