"""Verify a Standard Webhooks signature (pure; the clock is passed in).

Providers (or the shop's relay in front of them) sign their callbacks with the secret of the
destination they belong to, exactly as we sign ours: ``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">``.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from services.messenger.delivery import signing


class InvalidSignature(Exception):
    """The callback is not authentic (missing headers, stale, or no matching signature)."""


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = 300,
) -> str:
    """Return the ``webhook-id`` if one of the signatures matches, else raise.

    ``headers`` must be case-insensitive or lower-case. A timestamp more than ``tolerance``
    seconds away from ``now`` (either way) is refused, which bounds replays of a captured
    callback.
    """
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not stamp or not signatures:
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise InvalidSignature("webhook-timestamp is not Unix seconds")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("webhook-timestamp is too old or too new")
    try:
        expected = signing.sign(secret, msg_id, timestamp, body)
    except ValueError as exc:
        raise InvalidSignature(f"cannot verify: {exc}") from None
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return msg_id
    raise InvalidSignature("no matching signature")
