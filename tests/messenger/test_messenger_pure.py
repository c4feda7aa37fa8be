"""The messenger's own pure pieces (the delivery/ building blocks have tests/messenger/unit)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.messenger.deliveries.claims import ClaimedDelivery
from services.messenger.deliveries.status import AttemptOutcome, Status, next_state
from services.messenger.delivery.retry import Dead, Delivered, DisableDestination, Failed, Retry
from services.messenger.delivery.signing import build_headers
from services.messenger.delivery.templates import TemplateSource
from services.messenger.dispatch.fairness import claim_caps
from services.messenger.dispatch.plan import Send, Skip, Target, plan
from services.messenger.dispatch.ratelimit import TokenBucket
from services.messenger.providers.verify import InvalidSignature, verify
from services.messenger.settings import MessengerSettings
from services.messenger.suppressions.rules import (
    Kind,
    ProviderEventType,
    merge_provider_status,
    normalize_address,
    subjects_to_check,
    suppressions_for_event,
)
from services.messenger.webhooks.body import webhook_body
from services.messenger.webhooks.transport import GuardedBackend, webhook_client
from shared.errors import BadRequest
from shared.http.pages import decode_cursor, encode_cursor
from tests.support.receiver import new_secret

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_token_bucket_allows_a_burst_then_spaces_sends_at_the_rate() -> None:
    bucket = TokenBucket(rate=4)
    waits = [bucket.reserve(10.0) for _ in range(6)]
    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4:] == pytest.approx([0.25, 0.5])
    assert bucket.affordable(10.0, horizon=1.0) == 2  # 4 per second minus 2 booked
    bucket.cancel(10.0)
    assert bucket.reserve(10.0) == pytest.approx(0.5)
    assert bucket.reserve(20.0) == 0  # refilled (to the burst, not beyond)
    assert bucket.affordable(20.0, horizon=0) == 3
    with pytest.raises(ValueError):
        TokenBucket(rate=0)


def _target(dest_id: str = "dst_a", **kw: Any) -> Target:
    values: dict[str, Any] = {
        "id": dest_id,
        "url": "https://x.example.com/",
        "secret": "whsec_x",
        "enabled": True,
        "disabled_reason": None,
        "rate_limit_per_second": 10.0,
        "max_concurrency": 3,
        **kw,
    }
    return Target(**values)


def test_claim_caps_respect_free_slots_tokens_and_the_global_limit() -> None:
    slow = _target("dst_slow", max_concurrency=2)
    limited = _target("dst_limited", rate_limit_per_second=0.5)
    off = _target("dst_off", enabled=False)
    buckets = {"dst_limited": TokenBucket(rate=0.5)}
    buckets["dst_limited"].reserve(0.0)  # its token and the next one (in 2 s) are booked
    buckets["dst_limited"].reserve(0.0)
    caps = claim_caps(
        [slow, limited, off],
        inflight={"dst_slow": 2},
        buckets=buckets,
        now=0.0,
        free=5,
    )
    assert caps == {"dst_slow": 0, "dst_limited": 0, "dst_off": 5}
    assert claim_caps([_target()], inflight={}, buckets={}, now=0.0, free=2) == {"dst_a": 2}
    assert "secret" not in repr(_target(secret="whsec_topsecret"))


def _claimed(**kw: Any) -> ClaimedDelivery:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "action_id": "act_1",
        "customer_key": "user-1",
        "channel": "email",
        "destination_id": "dst_a",
        "destination_named": True,
        "template": "welcome",
        "payload": {"customer": {"id": "user-1", "email": "Ann@Example.com"}},
        "action_created_at": NOW,
        "attempt_count": 0,
        "round": 1,
        "round_attempts": 0,
        "claim_token": uuid.uuid4(),
        **kw,
    }
    return ClaimedDelivery(**values)


def test_plan_checks_erasure_suppression_destination_then_template() -> None:
    template = TemplateSource(text="hi")
    base: dict[str, Any] = {
        "targets": {"dst_a": _target(), "dst_def": _target("dst_def")},
        "defaults": {"email": "dst_def"},
        "suppressed": {},
        "templates": {"welcome": template},
    }
    assert plan(_claimed(), **base) == Send(_target(), template)
    erased = plan(_claimed(payload=None), **base)
    assert isinstance(erased, Skip) and erased.status is Status.CANCELLED
    by_address = plan(
        _claimed(), **{**base, "suppressed": {("email", Kind.ADDRESS, "ann@example.com"): "x"}}
    )
    assert isinstance(by_address, Skip) and by_address.status is Status.SUPPRESSED
    missing = plan(_claimed(destination_id="dst_gone"), **base)
    assert isinstance(missing, Skip) and missing.status is Status.FAILED
    rerouted = plan(_claimed(destination_id="dst_gone", destination_named=False), **base)
    assert isinstance(rerouted, Send) and rerouted.target.id == "dst_def"
    nothing = plan(_claimed(destination_id=None, destination_named=False, channel="sms"), **base)
    assert isinstance(nothing, Skip) and "no destination" in nothing.reason
    disabled = plan(
        _claimed(), **{**base, "targets": {"dst_a": _target(enabled=False, disabled_reason="410")}}
    )
    assert isinstance(disabled, Skip) and "disabled: 410" in disabled.reason
    external = plan(_claimed(template="not-managed"), **base)
    assert isinstance(external, Send) and external.template is None


def test_next_state_of_each_decision() -> None:
    at = NOW + timedelta(seconds=5)
    assert next_state(Delivered(), now=NOW).status is Status.DELIVERED
    retry = next_state(Retry(timedelta(seconds=5), at, "HTTP 503"), now=NOW)
    assert (retry.status, retry.next_attempt_at, retry.outcome) == (
        Status.RETRYING,
        at,
        AttemptOutcome.RETRY,
    )
    gone = next_state(DisableDestination("410"), now=NOW)
    assert gone.status is Status.FAILED and gone.disable_destination
    assert next_state(Failed("400"), now=NOW).outcome is AttemptOutcome.FAILED
    assert next_state(Dead("out"), now=NOW).status is Status.DEAD


def test_suppression_rules() -> None:
    assert normalize_address("email", " Ann@Example.COM ") == "ann@example.com"
    assert normalize_address("sms", "+1 (555) 010-9999") == "+15550109999"
    assert subjects_to_check("sms", "u1", {"customer": {"phone": "+1 555 0100"}}) == [
        ("sms", Kind.CUSTOMER, "u1"),
        ("sms", Kind.ADDRESS, "+15550100"),
    ]
    assert subjects_to_check("push", "u1", {"customer": "garbage"}) == [
        ("push", Kind.CUSTOMER, "u1")
    ]
    bounced = ProviderEventType.BOUNCED
    assert suppressions_for_event(bounced, "email", "u1", "A@b.c") == [
        ("email", Kind.ADDRESS, "a@b.c")
    ]
    assert suppressions_for_event(bounced, "email", "u1", None) == [("email", Kind.CUSTOMER, "u1")]
    assert suppressions_for_event(ProviderEventType.DELIVERED, "email", "u1", "a@b.c") == []
    assert len(suppressions_for_event(ProviderEventType.COMPLAINED, "email", "u1", "a@b.c")) == 2
    assert merge_provider_status("bounced", ProviderEventType.DELIVERED) == "bounced"
    assert merge_provider_status("delivered", ProviderEventType.COMPLAINED) == "complained"
    assert merge_provider_status(None, ProviderEventType.DELIVERED) == "delivered"


def test_provider_signature_verification() -> None:
    secret, other = new_secret(), new_secret()
    body = b'{"events": []}'
    now = int(time.time())
    headers = build_headers([other, secret], "msg_1", now, body)  # during a rotation
    assert verify(secret, headers, body, now=now) == "msg_1"
    for bad_headers, bad_body, at in (
        (headers, body + b" ", now),
        (headers, body, now + 301),
        ({**headers, "webhook-timestamp": "12e3"}, body, now),
        ({k: v for k, v in headers.items() if k != "webhook-id"}, body, now),
        (build_headers(other, "msg_1", now, body), body, now),
    ):
        with pytest.raises(InvalidSignature):
            verify(secret, bad_headers, bad_body, now=at)


def test_webhook_body_is_the_contract_envelope() -> None:
    body = orjson.loads(webhook_body({"action_id": "act_1"}, created_at=NOW))
    assert body == {
        "type": "action.send",
        "timestamp": "2026-11-22T12:00:00Z",
        "data": {"action_id": "act_1"},
    }


def test_retry_schedule_and_private_destinations_come_from_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("CLM_DEV_MODE", "CLM_ALLOW_PRIVATE_DESTINATIONS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLM_RETRY_SCHEDULE", "[0, 0.2, 0.4]")
    settings = MessengerSettings(admin_token="a-real-token-1234", secret_key="k" * 32)
    policy = settings.retry_policy()
    assert policy.schedule == (timedelta(0), timedelta(seconds=0.2), timedelta(seconds=0.4))
    assert policy.timeout == timedelta(seconds=15)
    assert settings.allow_private_destinations is False
    # Dev mode (clm run) does not override CLM_ALLOW_PRIVATE_DESTINATIONS=false.
    assert MessengerSettings(dev_mode=True).allow_private_destinations is False
    allowed = MessengerSettings(dev_mode=True, allow_private_destinations=True)
    assert allowed.allow_private_destinations is True
    monkeypatch.setenv("CLM_RETRY_SCHEDULE", "[5, 1]")
    with pytest.raises(ValueError):
        MessengerSettings()


def test_cursors_round_trip_and_garbage_is_a_bad_request() -> None:
    item = uuid.uuid4()
    assert decode_cursor(encode_cursor(NOW, item)) == (NOW, item)
    assert decode_cursor(None) is None
    with pytest.raises(BadRequest):
        decode_cursor("bm90LWEtY3Vyc29y")


async def test_the_webhook_client_connects_through_the_guard_and_follows_no_redirects() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    client = webhook_client(resolver=resolver, allow_private=False, max_connections=4)
    try:
        assert client.follow_redirects is False
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert isinstance(pool._network_backend, GuardedBackend)
    finally:
        await client.aclose()
