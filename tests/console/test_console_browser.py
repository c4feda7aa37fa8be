"""The console in a real browser: Debian's chromium driven by Playwright.

Sign in, write a rule in the editor (a validation message appears on the field, the fix
clears it, save), run a backtest and see its chart, find a customer and read the timeline,
replay a dead delivery. Every page is saved as a 1280x800 screenshot under
``tests/artefacts/console/`` (not committed) so anyone can look at what the console shows.

Skipped, saying so, where chromium is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.console.console_support import System, dead_delivery, destination_for, unique
from tests.console.test_console_routes import PAGES, customer_with_events
from tests.messenger.messenger_support import FAST_SCHEDULE, wait_delivery
from tests.support.services import ADMIN_TOKEN

CHROMIUM = os.environ.get("CLM_TEST_CHROMIUM", "/usr/bin/chromium")
ARTEFACTS = Path(__file__).resolve().parents[1] / "artefacts" / "console"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None,
        reason=f"browser tests skipped: no chromium at {CHROMIUM} (apt-get install -y chromium)",
    ),
]


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Any, stack: System) -> AsyncIterator[Any]:
    """A signed-in tab at 1280x800."""
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=stack.console.url
    )
    tab = await context.new_page()
    tab.set_default_timeout(20_000)
    await tab.goto("/sign-in")
    await shot(tab, "sign-in")
    await tab.fill("#token", ADMIN_TOKEN)
    await tab.click("button[type=submit]")
    await tab.wait_for_url(re.compile(r".*/$"))
    yield tab
    await context.close()


async def shot(tab: Any, name: str) -> None:
    await tab.screenshot(path=str(ARTEFACTS / f"{name}.png"))


def _name(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "overview"


async def test_every_page_in_the_browser(page: Any) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    for path in PAGES:
        await page.goto(path)
        await page.wait_for_selector("h1")
        await shot(page, _name(path))
    assert errors == [], errors  # no blocked script or style, nothing from elsewhere


async def test_write_a_rule_see_the_error_on_the_field_fix_it_and_save(
    page: Any, stack: System
) -> None:
    key = unique("cb")
    await page.goto("/rules/new")
    await page.fill("#key", key)
    await page.fill("#name", "Browser test rule")
    await page.fill("#trigger_event", f"Console Test {uuid.uuid4().hex}")
    await page.fill("#audience", '[{"path": "profile.trait.email", "op": "exists"}]')
    message = page.locator("#errors-audience li")
    await message.first.wait_for()
    assert "profile.traits" in await message.first.inner_text()
    await shot(page, "rule-editor-error")
    await page.fill("#audience", '[{"path": "profile.traits.email", "op": "exists"}]')
    await page.locator("#check-state.good").wait_for()
    assert await message.count() == 0
    await page.click("button:text-is('Save')")
    await page.wait_for_url(f"**/rules/{key}")
    stack.created_rules.append(key)
    assert key in await page.inner_text("h1")
    await shot(page, "rule-detail")


async def test_backtest_draws_its_chart(page: Any, stack: System) -> None:
    key = unique("cb")
    trigger = f"Console Test {uuid.uuid4().hex}"
    customer = await customer_with_events(stack, trigger)
    async with stack.engine.admin() as engine:
        body = {
            "key": key,
            "name": "Backtest in a browser",
            "enabled": False,
            "trigger": {"type": "event", "event": trigger},
            "steps": [{"send": {"channel": "webhook", "template": "t"}}],
        }
        assert (await engine.post("/v1/rules", json=body)).status_code == 201
    stack.created_rules.append(key)
    await page.goto(f"/rules/{key}")
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    await page.fill("#bt-from", yesterday)
    await page.click("text=Run backtest")
    await page.locator("#backtest svg.columns").wait_for()
    heights = await page.locator("#backtest svg.columns rect").evaluate_all(
        "bars => bars.map(bar => Number(bar.getAttribute('height')))"
    )
    assert any(h > 0 for h in heights), heights  # today's bar: the customer's send
    assert customer in await page.inner_text("#backtest")
    await shot(page, "rule-backtest")


async def test_find_a_customer_and_read_the_timeline(page: Any, stack: System) -> None:
    trigger = f"Console Test {uuid.uuid4().hex}"
    customer = await customer_with_events(stack, trigger)
    await page.goto("/customers")
    await page.fill("#q", f"{customer}@exa")
    await page.click("text=Search")
    await page.click(f"a[href='/customers/{customer}']")
    await page.wait_for_url(f"**/customers/{customer}")
    assert trigger in await page.inner_text("ol.timeline")
    await shot(page, "customer-profile")


async def test_replay_a_dead_delivery(page: Any, stack: System) -> None:
    hook = stack.receiver.hook(*[500] * len(FAST_SCHEDULE))
    destination = await destination_for(stack, hook, "push")
    action_id, dead = await dead_delivery(stack, destination)
    await page.goto("/deliveries?status=dead")
    row = page.locator("tr", has=page.locator(f"form[action='/deliveries/{dead['id']}/replay']"))
    await shot(page, "deliveries-dead")
    await row.locator("text=Replay").click()
    await page.locator(".flash", has_text="Replay queued").wait_for()
    delivered = await wait_delivery(stack.messenger, action_id, "delivered")
    assert delivered["id"] == dead["id"]
