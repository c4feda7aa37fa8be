"""Request and response bodies of ``/v1/templates``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

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


class PreviewIn(BaseModel):
    """Whose data to render with: ``data`` as given, else the newest delivery's data of
    ``customer_id``, else a sample customer."""

    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = Field(default=None, description="a customer the messenger sent to")
    data: dict[str, Any] | None = Field(default=None, description="webhook data to render with")


class PreviewOut(BaseModel):
    subject: str | None
    text: str | None
    html: str | None
    source: Literal["sample", "customer", "given"] = Field(
        description="where the data came from: the sample, the customer's newest delivery, "
        "or the request"
    )
    data: dict[str, Any] = Field(description="the data the template was rendered with")
