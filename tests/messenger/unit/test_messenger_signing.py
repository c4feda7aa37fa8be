"""Standard Webhooks signing, checked against the reference ``standardwebhooks`` verifier."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from services.messenger.delivery.signing import (
    InvalidSecret,
    build_headers,
    decode_secret,
    generate_secret,
    mask_secret,
    sign,
    validate_secret,
)

# The example of the Standard Webhooks / Svix documentation.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

secrets_ = st.binary(min_size=24, max_size=64).map(
    lambda raw: "whsec_" + base64.b64encode(raw).decode()
)
msg_ids = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40
)
bodies = st.text(max_size=300).map(str.encode)


def test_signature_matches_the_specification_example() -> None:
    assert sign(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


@settings(max_examples=60)
@given(secrets_, msg_ids, bodies)
def test_signed_headers_verify_with_the_reference_library(
    secret: str, msg_id: str, body: bytes
) -> None:
    headers = build_headers(secret, msg_id, int(time.time()), body)
    Webhook(secret).verify(body, headers, json_parse=False)


@settings(max_examples=30)
@given(secrets_, msg_ids, bodies, st.binary(min_size=24, max_size=64))
def test_a_different_secret_does_not_verify(
    secret: str, msg_id: str, body: bytes, other: bytes
) -> None:
    assume(other != decode_secret(secret))
    headers = build_headers(secret, msg_id, int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, headers, json_parse=False)


def test_a_tampered_body_or_id_does_not_verify() -> None:
    secret = generate_secret()
    body = b'{"type":"action.send","data":{"action_id":"act_1"}}'
    headers = build_headers(secret, "act_1", int(time.time()), body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"act_1", b"act_2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "act_2"})


def test_headers_carry_id_timestamp_signature_and_content_type() -> None:
    headers = build_headers(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TIMESTAMP),
        "webhook-signature": SPEC_SIGNATURE,
        "content-type": "application/json",
    }


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    body = b"{}"
    headers = build_headers([old, new], "act_9", int(time.time()), body)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers)


def test_build_headers_needs_a_secret() -> None:
    with pytest.raises(InvalidSecret, match="at least one"):
        build_headers([], "act_1", 1, b"{}")


@pytest.mark.parametrize("nbytes", [24, 32])
def test_generated_secrets_are_valid_and_fresh(nbytes: int) -> None:
    first, second = generate_secret(nbytes), generate_secret(nbytes)
    assert first.startswith("whsec_")
    assert len(decode_secret(first)) == nbytes
    assert validate_secret(first) == first
    assert first != second


@pytest.mark.parametrize("nbytes", [16, 23, 33])
def test_generate_secret_refuses_other_sizes(nbytes: int) -> None:
    with pytest.raises(ValueError, match="nbytes"):
        generate_secret(nbytes)


def test_unpadded_secrets_are_accepted_like_the_reference_library() -> None:
    padded = "whsec_" + base64.b64encode(bytes(range(25))).decode()
    assert padded.endswith("=")
    unpadded = padded.rstrip("=")
    body = b"{}"
    headers = build_headers(unpadded, "act_1", int(time.time()), body)
    Webhook(padded).verify(body, headers)


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with 'whsec_'"),
        ("whsec_", "empty"),
        ("whsec_not base64!!", "standard base64"),
        ("whsec_" + base64.b64encode(b"x" * 16).decode(), "24-64 bytes, got 16"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24-64 bytes, got 65"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "standard base64"),
    ],
)
def test_validate_secret_says_what_is_wrong(secret: str, message: str) -> None:
    with pytest.raises(InvalidSecret, match=message):
        validate_secret(secret)


def test_invalid_secret_is_a_value_error_for_pydantic_validators() -> None:
    assert issubclass(InvalidSecret, ValueError)


def test_mask_secret_shows_only_the_last_four_characters() -> None:
    assert mask_secret(SPEC_SECRET) == "whsec_****LaSw"
    assert mask_secret("whsec_short") == "whsec_****"
    assert mask_secret("no-prefix-but-long-enough-to-leak") == "whsec_****"
    secret = generate_secret()
    masked = mask_secret(secret)
    assert secret[6:-4] not in masked


@pytest.mark.parametrize("msg_id", ["", "act 1", "act_1\r\nx-evil: 1", "act_é"])
def test_message_ids_that_cannot_travel_in_a_header_are_refused(msg_id: str) -> None:
    with pytest.raises(ValueError, match="msg_id"):
        sign(SPEC_SECRET, msg_id, SPEC_TIMESTAMP, b"{}")


@pytest.mark.parametrize("timestamp", [-1, True])
def test_timestamps_are_non_negative_unix_seconds(timestamp: int) -> None:
    with pytest.raises(ValueError, match="timestamp"):
        sign(SPEC_SECRET, SPEC_ID, timestamp, b"{}")
