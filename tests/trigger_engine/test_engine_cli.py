"""``clm rules install-examples`` against a running engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from clm.cli import main
from services.trigger_engine.rules.examples import load_examples
from tests.support.services import ADMIN_TOKEN
from tests.trigger_engine.engine_support import Engine

KEYS = sorted(rule["key"] for rule in load_examples())


@pytest.fixture
async def cleanup(engine: Engine) -> AsyncIterator[None]:
    """The plays apply to every customer: remove them before other tests run."""
    yield
    async with engine.admin() as client:
        for key in KEYS:
            await client.delete(f"/v1/rules/{key}")


async def test_install_examples_creates_every_play_once(
    engine: Engine,
    cleanup: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert engine.service is not None
    monkeypatch.setenv("CLM_ADMIN_TOKEN", ADMIN_TOKEN)
    argv = ["rules", "install-examples", "--url", engine.service.url]

    assert await asyncio.to_thread(main, argv) == 0
    first = capsys.readouterr().out.splitlines()
    assert await asyncio.to_thread(main, argv) == 0  # again: nothing changes
    second = capsys.readouterr().out.splitlines()

    assert len(KEYS) >= 9
    assert sorted(line.split()[1] for line in first) == KEYS
    assert {line.split()[0] for line in first} <= {"created", "updated"}
    assert {line.split()[0] for line in second} == {"unchanged"}
    async with engine.admin() as client:
        listed = {rule["key"] for rule in (await client.get("/v1/rules")).json()["items"]}
    assert set(KEYS) <= listed
