"""The ``clm`` command.

``clm run`` starts the whole system on the embedded default (or on external PostgreSQL and
Kafka when ``CLM_DATABASE_URL`` / ``CLM_KAFKA_BOOTSTRAP`` are set), keeps it running
(``clm.supervisor``: crashed services, PostgreSQL and the broker are started again) and
stops it in order on Ctrl-C or SIGTERM: services drain and commit, then the broker, then
PostgreSQL. A second Ctrl-C kills what is still running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from clm.runtime import SERVICES, prepare_all
from clm.supervisor import Stack
from services.trigger_engine.settings import EngineSettings
from shared.logging import configure_logging
from shared.settings import ServiceSettings

log = logging.getLogger("clm")

#: How often the supervisor looks at its children, and at the signals received.
TICK = 0.2


class RunSettings(ServiceSettings):
    """The settings ``clm run`` reads: every service's common ones (it creates the topics and
    applies the migrations), the ports of all three, and the secret key it hands on."""

    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

    dev_mode: bool = Field(default=True, description="clm run is the development default.")
    ingest_port: int = 8000
    engine_port: int = 8001
    messenger_port: int = 8002
    console_port: int = 8003
    kafka_port: int = 9092
    secret_key: SecretStr | None = None
    ready_timeout: float = 120.0
    drain_timeout: float = Field(
        default=30.0,
        ge=0,
        description="How long an orderly stop waits for the services to consume what the "
        "embedded broker holds before it stops it (what is left is published again at the "
        "next start).",
    )
    event_journal: bool = True

    def port_of(self, service: str) -> int:
        return {
            "ingest": self.ingest_port,
            "trigger_engine": self.engine_port,
            "messenger": self.messenger_port,
            "console": self.console_port,
        }[service]


def _kept_secret(settings: RunSettings, value: SecretStr | None, name: str, prefix: str) -> str:
    """``value`` if the user gave it, else the one generated on first run and kept in the data
    dir (readable by the owner only)."""
    if value is not None:
        return value.get_secret_value()
    path = settings.data_dir / name
    if path.exists():
        return path.read_text().strip()
    generated = prefix + secrets.token_urlsafe(32)
    path.write_text(generated + "\n")
    path.chmod(0o600)
    return generated


def admin_token(settings: RunSettings) -> str:
    """``CLM_ADMIN_TOKEN`` if set, else the one generated on first run and kept in the data dir."""
    return _kept_secret(settings, settings.admin_token, "admin_token", "adm_")


def service_environment(
    settings: RunSettings,
    *,
    database_url: str,
    bootstrap: str,
    token: str,
    secret_key: str,
    embedded_broker: bool = False,
) -> dict[str, str]:
    """What ``clm run`` sets for its services, on top of the user's own environment (and
    ``.env``, which the services read too). What the user set wins, except what only
    ``clm run`` knows: the servers' addresses and the generated secrets. The embedded broker
    keeps nothing, so ingest journals the events it accepts (``clm.recovery``)."""
    env = {
        "CLM_DATABASE_URL": database_url,
        "CLM_KAFKA_BOOTSTRAP": bootstrap,
        "CLM_ADMIN_TOKEN": token,
        "CLM_SECRET_KEY": secret_key,
    }
    chosen = settings.model_fields_set
    defaults = {
        "dev_mode": ("CLM_DEV_MODE", "true"),
        # clm run applied every migration already
        "migrate_on_start": ("CLM_MIGRATE_ON_START", "false"),
        "log_format": ("CLM_LOG_FORMAT", "text" if sys.stderr.isatty() else "json"),
    }
    if embedded_broker:
        defaults["event_journal"] = ("CLM_EVENT_JOURNAL", "true")
    for field_name, (variable, value) in defaults.items():
        if field_name not in chosen:
            env[variable] = value
    return env


def _banner(settings: RunSettings, bootstrap: str, token: str) -> str:
    labels = {
        "ingest": "ingest (Tracking API)",
        "trigger_engine": "trigger engine (ops API)",
        "messenger": "messenger (ops API)",
    }
    lines = ["", "clm is ready"]
    for spec in SERVICES:
        url = f"http://127.0.0.1:{settings.port_of(spec.name)}"
        if spec.name == "console":
            lines.append(f"  {'ops console':<26}{url}   sign in with the admin token")
        else:
            lines.append(f"  {labels[spec.name]:<26}{url}   docs: {url}/docs")
    lines += [
        f"  {'Kafka bootstrap':<26}{bootstrap}",
        f"  {'admin token':<26}{token}",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


def _wait_ready(settings: RunSettings, stack: Stack, stop: list[int]) -> bool:
    deadline = time.monotonic() + settings.ready_timeout
    pending = {spec.name for spec in SERVICES}
    with httpx.Client(timeout=2.0) as client:
        while pending and time.monotonic() < deadline and not stop:
            exited = stack.exited_service()
            if exited is not None:
                log.error(
                    "service exited during start", extra={"child": exited[0], "code": exited[1]}
                )
                return False
            for name in sorted(pending):
                url = f"http://127.0.0.1:{settings.port_of(name)}/readyz"
                try:
                    if client.get(url).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            time.sleep(TICK)
    return not pending


def run(settings: RunSettings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = admin_token(settings)
    secret_key = _kept_secret(settings, settings.secret_key, "secret_key", "")
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        if received:
            log.warning("second signal: stopping at once")
        received.append(signum)

    # Both to the process alone (kill <pid>, a process manager) and to its group (Ctrl-C):
    # the children are in sessions of their own and hear it from us, in order.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(
        data_dir=settings.data_dir,
        kafka_port=settings.kafka_port,
        topic_config=settings.topic_config(),
        drain_timeout=settings.drain_timeout,
        handoff_topic=EngineSettings().handoff_topic,
    )
    try:
        database_url = stack.database_url = settings.database_url or stack.start_postgres()
        bootstrap = settings.kafka_bootstrap or stack.start_kafka()
        if received:
            return 0
        env = service_environment(
            settings,
            database_url=database_url,
            bootstrap=bootstrap,
            token=token,
            secret_key=secret_key,
            embedded_broker=stack.kafka is not None,
        )
        os.environ.update(env)  # the migrations run here (the messenger's needs the key)
        asyncio.run(prepare_all(database_url, bootstrap, settings.topic_config()))
        if stack.kafka is not None:
            stack.recover()
            if not settings.event_journal:
                log.warning(
                    "CLM_EVENT_JOURNAL is off with the embedded broker: events accepted but "
                    "not consumed yet are lost whenever the broker stops"
                )
        # Every service gets every port, so the console finds the APIs wherever they are.
        ports = {spec.port_setting: str(settings.port_of(spec.name)) for spec in SERVICES}
        stack.start_services({spec.name: {**os.environ, **ports} for spec in SERVICES})
        if not _wait_ready(settings, stack, received):
            if not received:
                log.error("services did not become ready; stopping")
                return 1
            return 0
        print(_banner(settings, bootstrap, token), flush=True)
        while not received:
            stack.supervise()
            time.sleep(TICK)  # the supervisor's look interval, not synchronisation
        return 0
    finally:
        log.info("stopping")
        stack.stop(force=lambda: len(received) > 1)
        log.info("stopped")


def migrate(settings: RunSettings) -> int:
    if not settings.database_url or not settings.kafka_bootstrap:
        print("clm migrate needs CLM_DATABASE_URL and CLM_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    asyncio.run(
        prepare_all(settings.database_url, settings.kafka_bootstrap, settings.topic_config())
    )
    return 0


def install_examples(settings: RunSettings, url: str | None, directory: Path | None) -> int:
    """``clm rules install-examples``: POST (or PUT) the example plays to a running engine."""
    from services.trigger_engine.rules.examples import EXAMPLES_DIR, install, load_examples

    token_file = settings.data_dir / "admin_token"
    if settings.admin_token is not None:
        token = settings.admin_token.get_secret_value()
    elif token_file.exists():
        token = token_file.read_text().strip()
    else:
        print(
            f"no admin token: set CLM_ADMIN_TOKEN or run `clm run` ({token_file})", file=sys.stderr
        )
        return 2
    base = url or f"http://127.0.0.1:{settings.engine_port}"
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=30.0) as client:
            results = install(client, load_examples(directory or EXAMPLES_DIR))
    except httpx.HTTPError as exc:
        print(f"cannot reach the trigger engine at {base}: {exc}", file=sys.stderr)
        return 1
    for result in results:
        version = f" v{result.version}" if result.version is not None else ""
        print(f"{result.outcome:<10} {result.key}{version} {result.detail}".rstrip())
    return 1 if any(r.outcome == "failed" for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="clm", description="customer lifecycle trigger service")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the whole system (embedded PostgreSQL and Kafka by default)")
    sub.add_parser("migrate", help="apply all migrations and create topics on external servers")
    rules = sub.add_parser("rules", help="manage trigger rules").add_subparsers(
        dest="rules_command", required=True
    )
    examples = rules.add_parser(
        "install-examples", help="create (or update) the example plays on a running engine"
    )
    examples.add_argument(
        "--url", help="the engine's base URL (default: 127.0.0.1:CLM_ENGINE_PORT)"
    )
    examples.add_argument("--dir", type=Path, help="a directory of rule JSON files instead")
    receiver = sub.add_parser(
        "receiver", help="a local stand-in provider that verifies and prints webhooks"
    )
    receiver.add_argument("--port", type=int, default=9009)
    receiver.add_argument("--secret", help="the destination's whsec_ secret (default: a new one)")
    args = parser.parse_args(argv)
    if args.command == "receiver":
        from clm.receiver import run as run_receiver

        return run_receiver(args.port, args.secret)
    settings = RunSettings()
    configure_logging(
        "clm", level=settings.log_level, fmt="text" if sys.stderr.isatty() else "json"
    )
    if args.command == "run":
        return run(settings)
    if args.command == "rules":
        return install_examples(settings, args.url, args.dir)
    return migrate(settings)


if __name__ == "__main__":
    sys.exit(main())
