"""The ``clm`` command.

``clm run`` starts the whole system on the embedded default (or on external PostgreSQL and
Kafka when ``CLM_DATABASE_URL`` / ``CLM_KAFKA_BOOTSTRAP`` are set) and stops it in order on
Ctrl-C or SIGTERM: services drain and commit, then the broker, then PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from clm.runtime import SERVICES, EmbeddedKafka, EmbeddedPostgres, child_env, prepare_all
from shared.logging import configure_logging

log = logging.getLogger("clm")


class RunSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

    database_url: str | None = None
    kafka_bootstrap: str | None = None
    data_dir: Path = Path(".clm")
    admin_token: SecretStr | None = None
    ingest_port: int = 8000
    engine_port: int = 8001
    messenger_port: int = 8002
    console_port: int = 8003
    kafka_port: int = 9092
    kafka_topic_partitions: int = Field(default=8, ge=1)
    log_level: str = "INFO"
    ready_timeout: float = 120.0

    def port_of(self, service: str) -> int:
        return {
            "ingest": self.ingest_port,
            "trigger_engine": self.engine_port,
            "messenger": self.messenger_port,
            "console": self.console_port,
        }[service]


def admin_token(settings: RunSettings) -> str:
    """``CLM_ADMIN_TOKEN`` if set, else the one generated on first run and kept in the data dir."""
    if settings.admin_token is not None:
        return settings.admin_token.get_secret_value()
    path = settings.data_dir / "admin_token"
    if path.exists():
        return path.read_text().strip()
    token = "adm_" + secrets.token_urlsafe(32)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


class Stack:
    """Everything ``clm run`` started, stopped in reverse order."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.postgres: EmbeddedPostgres | None = None
        self.kafka: EmbeddedKafka | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start_infrastructure(self) -> tuple[str, str]:
        s = self.settings
        database_url = s.database_url
        if not database_url:
            self.postgres = EmbeddedPostgres(s.data_dir.resolve() / "postgres")
            database_url = self.postgres.start()
            log.info("embedded PostgreSQL started", extra={"data": str(self.postgres.data_dir)})
        bootstrap = s.kafka_bootstrap
        if not bootstrap:
            self.kafka = EmbeddedKafka(s.kafka_port, log_path=s.data_dir / "logs" / "kafka.log")
            bootstrap = self.kafka.start()
            log.info("embedded Kafka broker started", extra={"bootstrap": bootstrap})
        return database_url, bootstrap

    def start_services(self, database_url: str, bootstrap: str, token: str) -> None:
        text_logs = "text" if sys.stderr.isatty() else "json"
        for spec in SERVICES:
            env = child_env(
                CLM_DATABASE_URL=database_url,
                CLM_KAFKA_BOOTSTRAP=bootstrap,
                CLM_ADMIN_TOKEN=token,
                CLM_DEV_MODE="true",
                CLM_MIGRATE_ON_START="false",
                CLM_LOG_FORMAT=os.environ.get("CLM_LOG_FORMAT", text_logs),
                CLM_LOG_LEVEL=self.settings.log_level,
                CLM_KAFKA_TOPIC_PARTITIONS=str(self.settings.kafka_topic_partitions),
            )
            # Every port, so the console finds the APIs whatever they were moved to.
            for other in SERVICES:
                env[other.port_setting] = str(self.settings.port_of(other.name))
            # A session of its own: Ctrl-C reaches only us, and we stop children in order.
            self.children[spec.name] = subprocess.Popen(
                [sys.executable, "-m", spec.package],
                env=env,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_ready(self, stop: list[int]) -> bool:
        deadline = time.monotonic() + self.settings.ready_timeout
        pending = {spec.name for spec in SERVICES}
        with httpx.Client(timeout=2.0) as client:
            while pending and time.monotonic() < deadline and not stop:
                for name in sorted(pending):
                    if self.children[name].poll() is not None:
                        log.error("service exited during start", extra={"service": name})
                        return False
                    url = f"http://127.0.0.1:{self.settings.port_of(name)}/readyz"
                    try:
                        if client.get(url).status_code == 200:
                            pending.discard(name)
                    except httpx.HTTPError:
                        pass
                time.sleep(0.2)
        return not pending

    def stop(self) -> None:
        for name, child in reversed(self.children.items()):
            if child.poll() is None:
                log.info("stopping service", extra={"service": name})
                child.send_signal(signal.SIGTERM)
        for name, child in self.children.items():
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                log.warning("service did not stop in time, killing", extra={"service": name})
                child.kill()
                child.wait(5)
        self.children.clear()
        if self.kafka is not None:
            self.kafka.stop()
            self.kafka = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None


def run(settings: RunSettings) -> int:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    token = admin_token(settings)
    received: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(settings)
    try:
        database_url, bootstrap = stack.start_infrastructure()
        asyncio.run(
            prepare_all(database_url, bootstrap, partitions=settings.kafka_topic_partitions)
        )
        stack.start_services(database_url, bootstrap, token)
        if not stack.wait_ready(received):
            if not received:
                log.error("services did not become ready; stopping")
                return 1
            return 0
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
        print("\n".join(lines), flush=True)
        while not received:
            for name, child in stack.children.items():
                if child.poll() is not None:
                    log.error(
                        "service exited; stopping",
                        extra={"service": name, "code": child.returncode},
                    )
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        log.info("stopping")
        stack.stop()
        log.info("stopped")


def migrate(settings: RunSettings) -> int:
    if not settings.database_url or not settings.kafka_bootstrap:
        print("clm migrate needs CLM_DATABASE_URL and CLM_KAFKA_BOOTSTRAP", file=sys.stderr)
        return 2
    asyncio.run(prepare_all(settings.database_url, settings.kafka_bootstrap))
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
