"""``python -m services.console``: the ops console on ``CLM_CONSOLE_PORT`` (8003)."""

import uvicorn
import uvloop

from services.console.app import SERVICE, create_app
from services.console.settings import ConsoleSettings
from shared.logging import configure_logging

if __name__ == "__main__":
    settings = ConsoleSettings()
    configure_logging(SERVICE, level=settings.log_level, fmt=settings.log_format)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.console_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
        lifespan="on",
        loop="none",
        http="httptools",
    )
    uvloop.run(uvicorn.Server(config).serve())
