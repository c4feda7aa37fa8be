"""Write keys: generation, hashing, display prefix, HTTP Basic parsing."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from services.ingest.writekeys import generate_key, hash_key, key_prefix, parse_basic_auth


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def test_generated_keys_are_wk_and_32_url_safe_characters() -> None:
    keys = {generate_key() for _ in range(200)}
    assert len(keys) == 200
    for key in keys:
        assert re.fullmatch(r"wk_[A-Za-z0-9_-]{32}", key), key


def test_hash_is_sha256_hex_and_deterministic() -> None:
    key = "wk_" + "a" * 32
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_key(key) == hash_key(key)
    assert re.fullmatch(r"[0-9a-f]{64}", hash_key(key))
    assert hash_key(key) != hash_key(key[:-1] + "b")


def test_prefix_shows_only_the_start_of_the_key() -> None:
    key = "wk_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    assert key_prefix(key) == "wk_AbCdEf"
    assert len(key_prefix(generate_key())) == 9


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("wk_abc:"), "wk_abc"),
        (basic("wk_abc:ignored-password"), "wk_abc"),
        (basic("wk_abc"), "wk_abc"),
        ("basic " + base64.b64encode(b"wk_abc:").decode(), "wk_abc"),
        ("  BASIC   " + base64.b64encode(b"wk_abc:").decode() + "  ", "wk_abc"),
        (basic("wk_\u00e9:"), "wk_\u00e9"),
        (None, None),
        ("", None),
        ("Basic", None),
        ("Basic ", None),
        ("Bearer " + base64.b64encode(b"wk_abc:").decode(), None),
        ("Basic not*base64!", None),
        ("Basic " + base64.b64encode(b"\xff\xfe:").decode(), None),
        (basic(":password"), None),
        (basic(":"), None),
    ],
)
def test_basic_auth_yields_the_username_as_the_key(
    header: str | None, expected: str | None
) -> None:
    assert parse_basic_auth(header) == expected


def test_what_the_segment_client_sends_is_understood() -> None:
    from requests.auth import _basic_auth_str  # what analytics-python uses under the hood

    assert parse_basic_auth(_basic_auth_str("wk_site", "")) == "wk_site"
