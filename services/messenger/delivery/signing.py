"""Standard Webhooks signing (https://www.standardwebhooks.com), I/O-free.

A receiver verifies ``webhook-signature`` = ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``
keyed with the decoded ``whsec_`` secret. ``webhook-id`` is the action id, identical on every
retry and replay, so receivers can dedupe; ``webhook-timestamp`` is the attempt's own time in
Unix seconds (receivers reject stale ones), so the signature is recomputed for each attempt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
#: Standard Webhooks asks for secrets of 24 to 64 random bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
_MASK = "****"


class InvalidSecret(ValueError):
    """A destination secret that cannot be used to sign. The message says what is wrong."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key inside ``whsec_<base64>``, or :class:`InvalidSecret` saying what is wrong."""
    if not isinstance(secret, str):
        raise InvalidSecret("secret must be a string")
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"secret must start with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    if not encoded:
        raise InvalidSecret(f"secret is empty after {SECRET_PREFIX!r}")
    try:
        # Unpadded base64 is accepted, as the reference libraries do.
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidSecret(
            f"secret after {SECRET_PREFIX!r} must be standard base64 (A-Z a-z 0-9 + /)"
        ) from exc
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSecret(
            f"secret must decode to {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} bytes, got {len(key)}"
        )
    return key


def validate_secret(secret: str) -> str:
    """Return ``secret`` unchanged if it is usable, else raise :class:`InvalidSecret`.

    A ``ValueError`` subclass, so it works inside a pydantic ``field_validator``.
    """
    decode_secret(secret)
    return secret


def generate_secret(nbytes: int = 32) -> str:
    """A fresh ``whsec_`` secret of ``nbytes`` (24-32) bytes from :mod:`secrets`."""
    if not MIN_SECRET_BYTES <= nbytes <= 32:
        raise ValueError(f"nbytes must be between {MIN_SECRET_BYTES} and 32, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def mask_secret(secret: str) -> str:
    """What a GET shows instead of the secret: ``whsec_****`` plus its last four characters.

    Too-short or malformed input reveals nothing at all.
    """
    encoded = secret[len(SECRET_PREFIX) :] if secret.startswith(SECRET_PREFIX) else ""
    if len(encoded) < 16:
        return SECRET_PREFIX + _MASK
    return SECRET_PREFIX + _MASK + encoded[-4:]


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256(key, f"{msg_id}.{timestamp}." + body)>``."""
    return _sign_with_key(decode_secret(secret), msg_id, timestamp, body)


def build_headers(
    secret: str | Sequence[str],
    msg_id: str,
    timestamp: int,
    body: bytes,
    *,
    content_type: str = "application/json",
) -> dict[str, str]:
    """The headers of one signed attempt.

    ``secret`` may be several secrets (during a rotation): each gives one space-separated
    signature, and a receiver holding either secret verifies.
    """
    all_secrets = [secret] if isinstance(secret, str) else list(secret)
    if not all_secrets:
        raise InvalidSecret("at least one secret is required")
    signatures = " ".join(sign(s, msg_id, timestamp, body) for s in all_secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
        "content-type": content_type,
    }


def _sign_with_key(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    _check_msg_id(msg_id)
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(f"timestamp must be non-negative Unix seconds, got {timestamp!r}")
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def _check_msg_id(msg_id: str) -> None:
    # It travels in a header: no whitespace or control characters (header injection).
    if not msg_id or not msg_id.isascii() or not msg_id.isprintable() or " " in msg_id:
        raise ValueError(f"msg_id must be non-empty printable ASCII without spaces: {msg_id!r}")
