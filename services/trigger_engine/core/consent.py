"""Consent from a customer's traits, in the conventions Segment-fed tools use.

What is read, for a send on channel ``<channel>`` (``email``, ``sms``, ``push``, ``webhook``):

===============================  ======================================================
trait                            meaning
===============================  ======================================================
``unsubscribed``                 ``true``: opted out of every channel (``false`` says
                                 nothing; Customer.io / Segment convention)
``consent``                      a boolean: consent for every channel; an object:
                                 ``consent.<channel>`` for that channel
``<channel>_opt_in``             e.g. ``email_opt_in``, ``sms_opt_in``, ``push_opt_in``
===============================  ======================================================

A flag is a JSON boolean, or one of the strings ``"true"``/``"false"``, ``"yes"``/``"no"``,
``"1"``/``"0"`` (any case), or the integers 1/0; anything else is no signal. A denial
anywhere wins over a grant anywhere (the customer said no somewhere: we do not send).
Traits are whatever ``identify`` (or ``context.traits``) last set; an explicit ``null``
sent by ``identify`` removes the signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

ConsentMode = Literal["opt_in", "opt_out"]
Consent = Literal["granted", "denied", "unknown"]

_TRUE: Final = frozenset({"true", "yes", "1"})
_FALSE: Final = frozenset({"false", "no", "0"})


def flag(value: Any) -> bool | None:
    """A consent flag as a bool, or None when ``value`` is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def consent_of(traits: Mapping[str, Any], channel: str) -> Consent:
    """What the customer said about ``channel``: granted, denied, or nothing (unknown)."""
    if flag(traits.get("unsubscribed")) is True:
        return "denied"
    consent = traits.get("consent")
    per_channel = consent.get(channel) if isinstance(consent, Mapping) else consent
    said = (flag(traits.get(f"{channel}_opt_in")), flag(per_channel))
    if False in said:
        return "denied"
    return "granted" if True in said else "unknown"


def allows(mode: ConsentMode, consent: Consent) -> bool:
    """Opt-out channels send unless denied; opt-in channels only when granted."""
    return consent == "granted" if mode == "opt_in" else consent != "denied"
