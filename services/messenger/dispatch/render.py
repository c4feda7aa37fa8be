"""Render a managed template into the webhook data (``data.rendered``), off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from services.messenger.delivery.templates import RenderError, TemplateSource, render


async def render_into(data: dict[str, Any], template: TemplateSource) -> str | None:
    """Add ``rendered`` (subject, text, html) to ``data``; or return why it failed.

    The context is the webhook data itself (customer, context, rule, …). Rendering runs in a
    thread so a template at its CPU budget cannot stall other deliveries.
    """
    context = {k: v for k, v in data.items() if k != "rendered"}
    result = await asyncio.to_thread(render, template, context)
    if isinstance(result, RenderError):
        name = data.get("template")
        return f"template {name!r} failed ({result.kind} in {result.part}): {result.message}"
    data["rendered"] = {"subject": result.subject, "text": result.text, "html": result.html}
    return None
