"""The console's pages, one module per area; each is an ``APIRouter`` named ``router``."""
