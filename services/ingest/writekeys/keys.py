"""Write keys: generation, storage hash, display prefix and HTTP Basic parsing. Pure.

A key is ``wk_`` + 32 URL-safe characters from :mod:`secrets` (24 random bytes, 192 bits).
It is shown once, at creation; only :func:`hash_key` of it is stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from typing import Final

KEY_PREFIX: Final = "wk_"
#: How much of a key :func:`key_prefix` shows: ``wk_`` and 6 random characters.
DISPLAY_LENGTH: Final = len(KEY_PREFIX) + 6


def generate_key() -> str:
    """A new write key: ``wk_`` + 32 URL-safe base64 characters (192 random bits)."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    """The stored form of ``key``: its SHA-256, as 64 lowercase hex digits.

    A fast, unsalted hash is right here, unlike for passwords: a write key carries 192 bits
    from a CSPRNG, so a stolen hash cannot be brute-forced or looked up in a dictionary,
    and salting or a slow KDF (bcrypt, scrypt, argon2) would add nothing but latency to
    every Tracking API request. Being deterministic, the hash is also the lookup key: a
    unique index on it finds the key in one indexed read, with no per-row comparison.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """What is safe to show of a key in listings and logs: ``wk_`` + its first 6 characters
    (36 of its 192 bits, not enough to use or guess it)."""
    return key[:DISPLAY_LENGTH]


def parse_basic_auth(header: str | None) -> str | None:
    """The write key from an ``Authorization: Basic base64(key:)`` header, else ``None``.

    Segment clients send the key as the username with an empty password; a password, if
    present, is ignored, and so is a missing ``:``. The scheme is case-insensitive. Anything
    malformed (another scheme, bad base64, not UTF-8, an empty username) gives ``None``.
    """
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    credentials = credentials.strip()
    if not credentials:
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    username = decoded.partition(":")[0]
    return username or None
