"""``python -m services.console``: the ops console on ``CLM_CONSOLE_PORT`` (8003).

No migrations and no Kafka: the console only calls the other services' APIs.
"""

import uvicorn
import uvloop

from services.console.app import SERVICE, create_app
from services.console.settings import ConsoleSettings
from shared.logging import configure_logging
from shared.service import server_config

if __name__ == "__main__":
    settings = ConsoleSettings()
    configure_logging(SERVICE, level=settings.log_level, fmt=settings.log_format)
    config = server_config(create_app(settings), host=settings.host, port=settings.console_port)
    uvloop.run(uvicorn.Server(config).serve())
