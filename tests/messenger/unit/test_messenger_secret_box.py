"""Destination secrets at rest: sealed with the current key, opened with it or an old one."""

from __future__ import annotations

import pytest

from services.messenger.destinations.secrets import (
    SecretBox,
    SecretKeySettings,
    UndecryptableSecret,
)
from services.messenger.settings import MessengerSettings

K1 = "first-key-" + "a" * 32
K2 = "second-key-" + "b" * 32
SECRET = "whsec_" + "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"


def test_a_sealed_secret_is_not_the_secret_and_opens_again() -> None:
    box = SecretBox(K1)
    sealed = box.seal(SECRET)
    assert SECRET not in sealed and "whsec_" not in sealed
    assert sealed != box.seal(SECRET)  # a fresh IV each time
    assert box.open(sealed) == SECRET
    assert box.is_current(sealed)


def test_an_old_key_still_opens_and_reseal_moves_to_the_current_key() -> None:
    sealed_old = SecretBox(K1).seal(SECRET)
    rotated = SecretBox(K2, [K1])
    assert rotated.open(sealed_old) == SECRET
    assert not rotated.is_current(sealed_old)
    resealed = rotated.reseal(sealed_old)
    assert rotated.is_current(resealed)
    assert SecretBox(K2).open(resealed) == SECRET  # the old key can go now


def test_a_wrong_key_says_which_settings_to_fix() -> None:
    with pytest.raises(UndecryptableSecret, match="CLM_SECRET_KEY"):
        SecretBox(K2).open(SecretBox(K1).seal(SECRET))
    with pytest.raises(UndecryptableSecret):
        SecretBox(K1).open("not a token")


def test_the_key_is_required_outside_dev_mode_and_must_be_long() -> None:
    with pytest.raises(ValueError, match="CLM_SECRET_KEY is required outside dev mode"):
        SecretKeySettings(secret_key=None).secret_box_for(dev_mode=False)
    with pytest.raises(ValueError, match="at least 32 characters"):
        SecretKeySettings(secret_key="short").secret_box_for(dev_mode=False)
    with pytest.raises(ValueError, match="CLM_SECRET_KEYS_OLD"):
        SecretKeySettings(secret_key=K1, secret_keys_old="old").secret_box_for(dev_mode=False)
    assert (
        SecretKeySettings(secret_key=None)
        .secret_box_for(dev_mode=True)
        .open(SecretKeySettings().secret_box_for(dev_mode=True).seal(SECRET))
        == SECRET
    )


def test_the_messenger_refuses_to_start_without_a_key_outside_dev_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CLM_DEV_MODE", "CLM_SECRET_KEY", "CLM_SECRET_KEYS_OLD"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="CLM_SECRET_KEY"):
        MessengerSettings(admin_token="a-real-token-1234")
    monkeypatch.setenv("CLM_SECRET_KEY", K2)
    monkeypatch.setenv("CLM_SECRET_KEYS_OLD", f"{K1}, ")
    settings = MessengerSettings(admin_token="a-real-token-1234")
    assert settings.secret_box().open(SecretBox(K1).seal(SECRET)) == SECRET
