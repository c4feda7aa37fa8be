from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class EngineSettings(ServiceSettings):
    engine_port: int = Field(default=8001, description="HTTP port of the ops API.")
