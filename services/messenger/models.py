"""The messenger service's tables (schema ``messenger``): importing this module registers
every one of them on ``Base.metadata``."""

from __future__ import annotations

from services.messenger.base import SCHEMA, Base
from services.messenger.deliveries.models import CancelledRun, Delivery, DeliveryAttempt
from services.messenger.destinations.models import Destination
from services.messenger.suppressions.models import Suppression
from services.messenger.templates_store.models import Template

__all__ = [
    "SCHEMA",
    "Base",
    "CancelledRun",
    "Delivery",
    "DeliveryAttempt",
    "Destination",
    "Suppression",
    "Template",
]
