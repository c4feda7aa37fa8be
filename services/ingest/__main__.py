from services.ingest.app import SERVICE, create_app
from services.ingest.models import SCHEMA
from services.ingest.settings import IngestSettings
from shared.service import serve

if __name__ == "__main__":
    settings = IngestSettings()
    serve(
        create_app,
        settings,
        service=SERVICE,
        package="services.ingest",
        schema=SCHEMA,
        port=settings.ingest_port,
    )
