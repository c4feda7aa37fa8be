"""Destination secrets encrypted at rest (Fernet, from ``cryptography``).

A destination's ``whsec_`` secret must be readable to sign webhooks, so it cannot be hashed;
it is encrypted with a key derived from ``CLM_SECRET_KEY`` and stored as a Fernet token
(AES-128-CBC with HMAC-SHA256, a timestamp and a version byte), so a database dump or a
backup alone does not reveal it.

Rotation: set the new key as ``CLM_SECRET_KEY`` and the previous one in
``CLM_SECRET_KEYS_OLD`` (comma-separated, newest first). Secrets stored under an old key are
still read, and every messenger re-encrypts them under the current key when it starts
(:func:`reencrypt_all`, also ``clm reencrypt-secrets``). Once that has run, drop the old key.

A key is any string of at least :data:`MIN_KEY_LENGTH` characters (e.g.
``python -c "import secrets; print(secrets.token_urlsafe(32))"``); the Fernet key is derived
from it with HKDF-SHA256, so a passphrase-like value is not used as a key directly.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Annotated, Final

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.messenger.destinations.models import Destination

log = logging.getLogger(__name__)

MIN_KEY_LENGTH: Final = 32
_HKDF_INFO: Final = b"clm messenger destination secrets v1"
#: Used only in dev mode when no key is set (tests, a service started by hand). Anyone can
#: read this file, so it protects nothing: `clm run` generates a real key instead.
_DEV_KEY: Final = "clm-development-only-key-not-a-secret-anywhere"


class UndecryptableSecret(Exception):
    """A stored secret that no configured key opens (a wrong or missing CLM_SECRET_KEY)."""


def fernet_key(key: str) -> bytes:
    """The Fernet key derived from a configured key."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        key.encode()
    )
    return base64.urlsafe_b64encode(derived)


class SecretBox:
    """Seals with the current key; opens with the current or any old key."""

    def __init__(self, current: str, old: Sequence[str] = ()) -> None:
        self._current = Fernet(fernet_key(current))
        self._all = MultiFernet([self._current, *(Fernet(fernet_key(k)) for k in old)])

    def seal(self, secret: str) -> str:
        return self._current.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._all.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise UndecryptableSecret(
                "the destination's secret cannot be decrypted with CLM_SECRET_KEY or "
                "CLM_SECRET_KEYS_OLD: set the key it was stored with"
            ) from None

    def is_current(self, sealed: str) -> bool:
        """Sealed with the current key (else: an old key, or none of ours)."""
        try:
            self._current.decrypt(sealed.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """``sealed`` re-encrypted with the current key."""
        try:
            return self._all.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise UndecryptableSecret("no configured key opens this secret") from None


class SecretKeySettings(BaseSettings):
    """``CLM_SECRET_KEY`` and ``CLM_SECRET_KEYS_OLD``, on their own so that a migration can
    read them without the rest of the messenger's settings."""

    model_config = SettingsConfigDict(env_prefix="CLM_", env_file=".env", extra="ignore")

    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts destination secrets at rest (at least 32 characters). Required "
        "outside dev mode; `clm run` generates one into the data directory.",
    )
    secret_keys_old: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Previous keys, comma-separated: still read, re-encrypted at start.",
    )

    @field_validator("secret_keys_old", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    def secret_box_for(self, *, dev_mode: bool) -> SecretBox:
        """The box of the configured keys. Raises ``ValueError`` (what to set) without a
        usable key outside dev mode."""
        old = [k.get_secret_value() for k in self.secret_keys_old]
        if self.secret_key is None:
            if not dev_mode:
                raise ValueError(
                    "CLM_SECRET_KEY is required outside dev mode: it encrypts destination "
                    "secrets at rest. Generate one with "
                    "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
                )
            return SecretBox(_DEV_KEY, old)
        current = self.secret_key.get_secret_value()
        for name, key in (("CLM_SECRET_KEY", current), *(("CLM_SECRET_KEYS_OLD", k) for k in old)):
            if len(key) < MIN_KEY_LENGTH and not dev_mode:
                raise ValueError(f"{name}: a key must be at least {MIN_KEY_LENGTH} characters")
        return SecretBox(current, old)


async def reencrypt_all(session: AsyncSession, box: SecretBox) -> tuple[int, list[str]]:
    """Re-encrypt under the current key every destination secret stored under an old one.
    Returns (how many were re-encrypted, ids no key opens). Safe to run on several
    instances at once: a row changed meanwhile is left to the run that changed it."""
    rows = (await session.execute(select(Destination.id, Destination.secret_encrypted))).all()
    changed = 0
    unreadable: list[str] = []
    for dest_id, sealed in rows:
        if box.is_current(sealed):
            continue
        try:
            resealed = box.reseal(sealed)
        except UndecryptableSecret:
            unreadable.append(dest_id)
            continue
        result = await session.execute(
            update(Destination)
            .where(Destination.id == dest_id, Destination.secret_encrypted == sealed)
            .values(secret_encrypted=resealed)
        )
        changed += result.rowcount or 0  # type: ignore[attr-defined]
    return changed, unreadable
