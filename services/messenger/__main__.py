from services.messenger.app import SERVICE, create_app
from services.messenger.base import SCHEMA
from services.messenger.settings import MessengerSettings
from shared.service import serve

if __name__ == "__main__":
    settings = MessengerSettings()
    serve(
        create_app,
        settings,
        service=SERVICE,
        package="services.messenger",
        schema=SCHEMA,
        port=settings.messenger_port,
    )
