from services.trigger_engine.app import SERVICE, create_app
from services.trigger_engine.models import SCHEMA
from services.trigger_engine.settings import EngineSettings
from shared.service import serve

if __name__ == "__main__":
    settings = EngineSettings()
    serve(
        create_app,
        settings,
        service=SERVICE,
        package="services.trigger_engine",
        schema=SCHEMA,
        port=settings.engine_port,
    )
