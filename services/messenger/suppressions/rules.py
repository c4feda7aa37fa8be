"""Pure rules of suppression: normalized addresses, what to check before a send, and what a
provider event suppresses."""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    CUSTOMER = "customer"
    ADDRESS = "address"


class Reason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    MANUAL = "manual"


class ProviderEventType(StrEnum):
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"


Subject = tuple[str, Kind, str]
"""(channel, kind, value)"""

_PHONE_NOISE = re.compile(r"[\s().\-]")
#: Channels whose address is a phone number; email uses the email address.
_PHONE_CHANNELS = frozenset({"sms"})
_EMAIL_CHANNELS = frozenset({"email"})


def normalize_address(channel: str, address: str) -> str:
    """Emails compare case-insensitively; phone numbers without spaces, dots, dashes and
    brackets. Anything else is only trimmed."""
    value = address.strip()
    if channel in _EMAIL_CHANNELS or "@" in value:
        return value.lower()
    if channel in _PHONE_CHANNELS:
        return _PHONE_NOISE.sub("", value)
    return value


def address_of(channel: str, data: Mapping[str, Any] | None) -> str | None:
    """The address a send on ``channel`` goes to, from the webhook data's ``customer``."""
    customer = (data or {}).get("customer")
    if not isinstance(customer, Mapping):
        return None
    field = "phone" if channel in _PHONE_CHANNELS else "email" if channel in _EMAIL_CHANNELS else ""
    value = customer.get(field) if field else None
    if not isinstance(value, str) or not value.strip():
        return None
    return normalize_address(channel, value)


def subjects_to_check(
    channel: str, customer_key: str, data: Mapping[str, Any] | None
) -> list[Subject]:
    """Every suppression that would stop a send to this customer on this channel."""
    subjects: list[Subject] = [(channel, Kind.CUSTOMER, customer_key)]
    address = address_of(channel, data)
    if address is not None:
        subjects.append((channel, Kind.ADDRESS, address))
    return subjects


def suppressions_for_event(
    event: ProviderEventType, channel: str, customer_key: str | None, address: str | None
) -> list[Subject]:
    """What a provider event suppresses: a bounce the address (it is the mailbox that fails;
    the customer if no address is known), a complaint or an unsubscribe the customer and
    the address. ``delivered`` suppresses nothing."""
    if event is ProviderEventType.DELIVERED:
        return []
    addr = normalize_address(channel, address) if address else None
    if event is ProviderEventType.BOUNCED:
        if addr:
            return [(channel, Kind.ADDRESS, addr)]
        return [(channel, Kind.CUSTOMER, customer_key)] if customer_key else []
    out: list[Subject] = []
    if customer_key:
        out.append((channel, Kind.CUSTOMER, customer_key))
    if addr:
        out.append((channel, Kind.ADDRESS, addr))
    return out


_PROVIDER_RANK = {
    ProviderEventType.DELIVERED: 0,
    ProviderEventType.BOUNCED: 1,
    ProviderEventType.UNSUBSCRIBED: 1,
    ProviderEventType.COMPLAINED: 2,
}


def merge_provider_status(current: str | None, event: ProviderEventType) -> str:
    """Provider callbacks arrive in any order: a later ``delivered`` never hides a bounce or
    a complaint already recorded."""
    if current is None:
        return event.value
    try:
        known = ProviderEventType(current)
    except ValueError:
        return event.value
    return event.value if _PROVIDER_RANK[event] >= _PROVIDER_RANK[known] else known.value
