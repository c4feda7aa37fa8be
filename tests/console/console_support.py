"""Helpers of the console tests: the whole system in this event loop, a signed-in browser
stand-in (httpx with cookies), and data made through the public APIs.

Rules, destinations and write keys made here are removed after each test, so tests
elsewhere (which route by channel default, or send `Product Added`) never see them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.console.security import CSRF_FIELD
from tests.messenger.messenger_support import make_action, produce, wait_delivery
from tests.support.receiver import Hook, Receiver
from tests.support.services import ADMIN_TOKEN, RunningService
from tests.trigger_engine.engine_support import Engine

_CSRF = re.compile(rf'name="{CSRF_FIELD}" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@dataclass
class System:
    ingest: RunningService
    engine: Engine
    messenger: RunningService
    console: RunningService
    receiver: Receiver
    created_rules: list[str] = field(default_factory=list)
    created_destinations: list[str] = field(default_factory=list)

    def engine_admin(self) -> httpx.AsyncClient:
        return self.engine.admin()

    async def cleanup(self) -> None:
        async with self.engine.admin() as engine:
            for key in self.created_rules:
                await engine.delete(f"/v1/rules/{key}")
        async with self.messenger.admin() as messenger:
            for destination in self.created_destinations:
                await messenger.delete(f"/v1/destinations/{destination}")
        self.created_rules.clear()
        self.created_destinations.clear()


@asynccontextmanager
async def signed_in(console: RunningService) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a console session (and its CSRF token as ``client.csrf``)."""
    async with console.client(follow_redirects=False) as client:
        form = await client.get("/sign-in")
        response = await client.post(
            "/sign-in", data={"token": ADMIN_TOKEN, CSRF_FIELD: csrf_of(form.text), "next": "/"}
        )
        assert response.status_code == 303, response.text
        page = await client.get("/rules")
        client.csrf = csrf_of(page.text)  # type: ignore[attr-defined]
        yield client


async def destination_for(stack: System, hook: Hook, channel: str) -> str:
    """A destination (not the channel's default) for ``hook``, deleted after the test."""
    async with stack.messenger.admin() as messenger:
        created = await messenger.post(
            "/v1/destinations",
            json={"channel": channel, "url": hook.url, "secret": hook.secret, "default": False},
        )
    assert created.status_code == 201, created.text
    destination: str = created.json()["id"]
    stack.created_destinations.append(destination)
    return destination


async def sign_in_with(console: RunningService, token: str, *, next: str) -> httpx.Response:
    """The answer to a sign-in form sent with ``token`` (and the form's own CSRF token)."""
    async with console.client(follow_redirects=False) as client:
        form = await client.get("/sign-in")
        return await client.post(
            "/sign-in", data={"token": token, CSRF_FIELD: csrf_of(form.text), "next": next}
        )


async def dead_delivery(stack: System, destination: str) -> tuple[str, dict[str, Any]]:
    """An action for ``destination`` (whose receiver fails every attempt), once it is dead:
    (action id, the delivery)."""
    action = make_action(unique("dead"), channel="push", destination=destination)
    await produce(stack.engine.infra, action)
    dead = await wait_delivery(stack.messenger, action.action_id, "dead", timeout=30)
    return action.action_id, dead


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rule_form(key: str, event: str, **fields: str) -> dict[str, str]:
    """The editor's fields for a rule that only ``event`` (unique to the test) triggers."""
    return {
        "key": key,
        "name": f"Console test {key}",
        "enabled": "on",
        "trigger_type": "event",
        "trigger_event": event,
        "steps": '[{"wait": "PT1S"}, {"send": {"channel": "webhook", "template": "t"}}]',
        "exit_when": '[{"event": "Order Completed"}]',
        "reentry": "P1D",
        **fields,
    }


def items(body: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = body["items"]
    return found
