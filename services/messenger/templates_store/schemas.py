"""Request and response bodies of ``/v1/templates``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.messenger.delivery.templates import MAX_SOURCE_CHARS

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$"


class TemplateIn(BaseModel):
    """Jinja2 sources (sandboxed). At least one part. The context is the webhook ``data``:
    ``customer``, ``context``, ``rule``, ``channel``… ``html`` is autoescaped."""

    model_config = ConfigDict(extra="forbid")

    subject: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)
    text: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)
    html: str | None = Field(default=None, max_length=MAX_SOURCE_CHARS)


class TemplateCreate(TemplateIn):
    name: str = Field(
        pattern=NAME_PATTERN,
        description="the template name a rule's send step uses (data.template)",
    )


class TemplateOut(BaseModel):
    name: str
    subject: str | None
    text: str | None
    html: str | None
    version: int = Field(description="incremented by every PUT")
    created_at: datetime
    updated_at: datetime
