"""Kafka topic names of the contract."""

from typing import Final

STOREFRONT_EVENTS: Final = "storefront.events"
EVENTS: Final = "clm.events"
ACTIONS: Final = "clm.actions"
DEAD_LETTERS: Final = "clm.dead-letters"

ALL: Final = (STOREFRONT_EVENTS, EVENTS, ACTIONS, DEAD_LETTERS)
