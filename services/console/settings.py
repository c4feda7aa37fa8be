"""Settings of the console (``CLM_`` environment variables).

The console holds no data of its own: it signs people in with the admin token, keeps their
sessions in memory, and calls the three services' APIs with that token.
"""

from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class ConsoleSettings(ServiceSettings):
    console_port: int = Field(default=8003, description="HTTP port of the ops console.")
    ingest_port: int = 8000
    engine_port: int = 8001
    messenger_port: int = 8002
    console_ingest_url: str | None = Field(
        default=None, description="Base URL of ingest (default: 127.0.0.1:CLM_INGEST_PORT)."
    )
    console_engine_url: str | None = Field(
        default=None, description="Base URL of the trigger engine (default: its port on loopback)."
    )
    console_messenger_url: str | None = Field(
        default=None, description="Base URL of the messenger (default: its port on loopback)."
    )
    console_session_hours: float = Field(
        default=8.0, gt=0, description="A session ends after this long without a request."
    )
    console_secure_cookies: bool = Field(
        default=False,
        description="Mark cookies Secure (set it when the console is served over HTTPS).",
    )
    console_api_timeout_seconds: float = Field(default=30.0, gt=0)

    def base_url(self, service: str) -> str:
        explicit = {
            "ingest": self.console_ingest_url,
            "engine": self.console_engine_url,
            "messenger": self.console_messenger_url,
        }[service]
        port = {
            "ingest": self.ingest_port,
            "engine": self.engine_port,
            "messenger": self.messenger_port,
        }[service]
        return (explicit or f"http://127.0.0.1:{port}").rstrip("/")
