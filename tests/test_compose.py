"""The production-shaped stack (docker-compose.yml, deploy/) is right by construction.

No Docker daemon is needed: the compose file is read as YAML, and `docker compose config`
(which validates without a daemon) runs only where the compose CLI is installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / "env.example"
CONTRACT = ROOT.parent / "shared" / "CONTRACT.md"

APP_PORTS = {"ingest": 8000, "trigger_engine": 8001, "messenger": 8002}
#: Run as several replicas (`--scale`): no fixed host port, or the second replica cannot bind.
SCALED = ("trigger_engine", "messenger")
BACKING_SERVICES = ("kafka", "postgres")
REQUIRED_APP_ENV = ("CLM_DATABASE_URL", "CLM_KAFKA_BOOTSTRAP", "CLM_ADMIN_TOKEN")
#: Secrets that must come from the host (`${VAR:?message}`), never a default in the file.
HOST_SECRETS = ("CLM_ADMIN_TOKEN", "CLM_SECRET_KEY")

# The CLM_ variables CONTRACT.md names; used when the contract is not beside the repository.
CONTRACT_VARIABLES = frozenset(
    {
        "CLM_DATABASE_URL",
        "CLM_KAFKA_BOOTSTRAP",
        "CLM_DATA_DIR",
        "CLM_ADMIN_TOKEN",
        "CLM_INGEST_PORT",
        "CLM_ENGINE_PORT",
        "CLM_MESSENGER_PORT",
        "CLM_CONSOLE_PORT",
        "CLM_KAFKA_PORT",
        "CLM_ALLOW_PRIVATE_DESTINATIONS",
        "CLM_LOG_LEVEL",
    }
)

CLM_VARIABLE = re.compile(r"\bCLM_[A-Z][A-Z0-9_]*\b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = compose["services"]
    return services


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment`, mapping or list form; a bare key (taken from the host) is ""."""
    env = service.get("environment") or {}
    if isinstance(env, dict):
        return {key: "" if value is None else str(value) for key, value in env.items()}
    return {key: value for key, _, value in (item.partition("=") for item in env)}


def port_mappings(service: dict[str, Any]) -> set[tuple[int | None, int]]:
    """(published, target) pairs from `ports`, short ("[ip:][host:]container") or long
    syntax; published is None when the host port is left to Docker."""
    mappings: set[tuple[int | None, int]] = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published = port.get("published")
            mappings.add((int(published) if published else None, int(port["target"])))
        else:
            *host, target = str(port).split(":")
            published = host[-1] if host else ""
            mappings.add((int(published) if published else None, int(target.split("/")[0])))
    return mappings


def contract_variables() -> set[str]:
    if CONTRACT.is_file():
        found = set(CLM_VARIABLE.findall(CONTRACT.read_text(encoding="utf-8")))
        assert found, f"no CLM_ variables found in {CONTRACT}"
        return found
    return set(CONTRACT_VARIABLES)


def test_compose_names_the_whole_stack(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {*BACKING_SERVICES, *APP_PORTS, "console"}


def test_console_starts_after_the_apis_it_calls_and_checks_readiness_on_its_port(
    services: dict[str, dict[str, Any]],
) -> None:
    console = services["console"]
    for name in APP_PORTS:
        assert console["depends_on"][name]["condition"] == "service_healthy", name
    assert (8003, 8003) in port_mappings(console)
    assert "127.0.0.1:8003/readyz" in " ".join(console["healthcheck"]["test"])
    assert console["command"][-2:] == ["-m", "services.console"]
    env = environment_of(console)
    assert "CLM_DATABASE_URL" not in env and "CLM_ADMIN_TOKEN" not in env
    for name, port in APP_PORTS.items():
        assert any(value == f"http://{name}:{port}" for value in env.values()), name


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), f"{name} disables its healthcheck"
        assert healthcheck.get("test"), f"{name} healthcheck has no test"


@pytest.mark.parametrize("name", APP_PORTS)
def test_app_service_starts_after_healthy_postgres_and_kafka(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    depends_on = services[name]["depends_on"]
    for backing in BACKING_SERVICES:
        assert depends_on[backing]["condition"] == "service_healthy", (name, backing)


@pytest.mark.parametrize(("name", "port"), APP_PORTS.items())
def test_app_service_publishes_its_port_and_checks_readiness_there(
    services: dict[str, dict[str, Any]], name: str, port: int
) -> None:
    service = services[name]
    expected = None if name in SCALED else port
    assert (expected, port) in port_mappings(service)
    probe = " ".join(service["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/readyz" in probe


@pytest.mark.parametrize("name", SCALED)
def test_scaled_services_bind_no_fixed_host_port_or_name(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert all(published is None for published, _ in port_mappings(service)), service["ports"]
    assert "container_name" not in service  # a fixed name cannot be scaled either


@pytest.mark.parametrize("name", APP_PORTS)
def test_app_service_runs_its_own_module(services: dict[str, dict[str, Any]], name: str) -> None:
    command = services[name]["command"]
    if isinstance(command, str):
        command = command.split()
    assert command[-2:] == ["-m", f"services.{name}"]


@pytest.mark.parametrize("name", APP_PORTS)
def test_app_service_is_configured_for_external_postgres_and_kafka(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    env = environment_of(services[name])
    for variable in REQUIRED_APP_ENV:
        assert env.get(variable), f"{name} does not set {variable}"
    assert env["CLM_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in env["CLM_DATABASE_URL"]
    assert env["CLM_KAFKA_BOOTSTRAP"] == "kafka:9092"


@pytest.mark.parametrize("name", APP_PORTS)
@pytest.mark.parametrize("secret", HOST_SECRETS)
def test_secrets_come_from_the_host_and_are_required(
    services: dict[str, dict[str, Any]], name: str, secret: str
) -> None:
    value = environment_of(services[name])[secret]
    assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", value), value


@pytest.mark.parametrize("name", APP_PORTS)
def test_app_service_shuts_down_gracefully_and_restarts(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    service = services[name]
    assert service["restart"] == "unless-stopped"
    assert service["stop_grace_period"] == "30s"


def test_app_services_build_from_an_existing_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in APP_PORTS:
        build = services[name]["build"]
        context = ROOT / build["context"]
        assert context.resolve() == ROOT, f"{name} builds from {context}"
        assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"


def test_dockerfile_is_multi_stage_and_runs_unprivileged() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    assert "python:3.11-slim" in dockerfile
    assert len(re.findall(r"^FROM\s", dockerfile, flags=re.MULTILINE)) >= 2
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_build_context_leaves_out_local_state() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert ignored >= {".git", ".venv", ".clm"}
    assert {".env", "**/.env"} & ignored


def test_kafka_is_kraft_without_topic_auto_creation(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "INTERNAL://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_postgres_keeps_its_data_in_a_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    volume_names = {str(v).split(":")[0] for v in postgres["volumes"]}
    assert volume_names & set(compose["volumes"])


def test_env_example_lists_every_contract_variable() -> None:
    listed = {
        match.group(1)
        for match in re.finditer(
            r"^#?\s*(CLM_[A-Z0-9_]+)=", ENV_EXAMPLE.read_text(encoding="utf-8"), re.MULTILINE
        )
    }
    missing = contract_variables() - listed
    assert not missing, f"deploy/env.example lacks {sorted(missing)}"


def test_env_example_lists_what_compose_sets(services: dict[str, dict[str, Any]]) -> None:
    listed = set(CLM_VARIABLE.findall(ENV_EXAMPLE.read_text(encoding="utf-8")))
    for name in [*APP_PORTS, "console"]:
        set_by_compose = {key for key in environment_of(services[name]) if key.startswith("CLM_")}
        assert set_by_compose <= listed, sorted(set_by_compose - listed)


def compose_cli() -> list[str]:
    if shutil.which("docker") is None:
        pytest.skip("docker is not on PATH")
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30
    )
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose") is not None:
        return ["docker-compose"]
    pytest.skip("docker is on PATH but the compose plugin is not installed")


def test_docker_compose_config_accepts_the_file() -> None:
    env = {
        **os.environ,
        "CLM_ADMIN_TOKEN": "test-token-not-a-secret",
        "CLM_SECRET_KEY": "test-key-not-a-secret",
    }
    result = subprocess.run(
        [*compose_cli(), "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
