"""Running services in tests: in this event loop, on free loopback ports."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI

from clm.runtime import free_port

ADMIN_TOKEN = "adm_test_" + uuid.uuid4().hex


@dataclass(frozen=True)
class Infra:
    database_url: str
    bootstrap: str


@dataclass
class RunningService:
    app: FastAPI
    url: str
    server: uvicorn.Server
    task: asyncio.Task[None]

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=15.0, **kwargs)  # type: ignore[arg-type]

    def admin(self) -> httpx.AsyncClient:
        return self.client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    async def stop(self) -> None:
        self.server.should_exit = True
        await asyncio.wait_for(self.task, 30)


async def start_service(app: FastAPI) -> RunningService:
    """Serve ``app`` on a free loopback port in this event loop until stopped."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = asyncio.get_running_loop().time() + 30
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server exited during start")
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("server did not start in 30 s")
        await asyncio.sleep(0.02)
    return RunningService(app, f"http://127.0.0.1:{port}", server, task)


def settings_env(infra: Infra, **extra: object) -> dict[str, object]:
    """Keyword arguments for any service's settings class in tests."""
    return {
        "database_url": infra.database_url,
        "kafka_bootstrap": infra.bootstrap,
        "admin_token": ADMIN_TOKEN,
        "dev_mode": True,
        "log_format": "text",
        **extra,
    }
