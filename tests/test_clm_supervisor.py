"""The supervisor's restart delays (pure) and the environment clm run hands its services."""

from __future__ import annotations

import pytest

from clm.cli import RunSettings, service_environment
from clm.supervisor import FIRST_DELAY, MAX_DELAY, STABLE_AFTER, Backoff


def test_restart_delays_double_up_to_the_cap_and_reset_once_stable() -> None:
    backoff = Backoff()
    delays = [backoff.next_delay(uptime=1.0) for _ in range(8)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_DELAY, MAX_DELAY]
    assert backoff.restarts == 8
    assert backoff.next_delay(uptime=STABLE_AFTER) == FIRST_DELAY


def _environment(**settings: object) -> dict[str, str]:
    return service_environment(
        RunSettings(**settings),  # type: ignore[arg-type]
        database_url="postgresql://x",
        bootstrap="127.0.0.1:1",
        token="adm_t",
        secret_key="k",
    )


def test_clm_run_defaults_to_dev_mode_but_never_overrides_what_the_user_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CLM_DEV_MODE", "CLM_MIGRATE_ON_START", "CLM_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    env = _environment()
    assert env["CLM_DEV_MODE"] == "true" and env["CLM_MIGRATE_ON_START"] == "false"
    monkeypatch.setenv("CLM_DEV_MODE", "false")
    monkeypatch.setenv("CLM_LOG_FORMAT", "json")
    chosen = _environment()
    assert "CLM_DEV_MODE" not in chosen and "CLM_LOG_FORMAT" not in chosen
    assert chosen["CLM_DATABASE_URL"] == "postgresql://x"
