from __future__ import annotations

from pydantic import Field

from shared.settings import ServiceSettings


class MessengerSettings(ServiceSettings):
    messenger_port: int = Field(default=8002, description="HTTP port of the ops API.")
