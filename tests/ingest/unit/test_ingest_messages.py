"""Tracking API message validation: every rule's user-facing message, ids, defaults."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from services.ingest.tracking import INVALID_MESSAGE, Rejection, parse_message
from services.ingest.tracking.messages import (
    AliasMessage,
    GroupMessage,
    IdentifyMessage,
    PageMessage,
    TrackMessage,
)
from shared.envelope import EventV1

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def parse(raw: dict[str, Any], call_type: str | None = None) -> EventV1 | Rejection:
    return parse_message(raw, source="shop-eu", received_at=NOW, call_type=call_type)


def accepted(raw: dict[str, Any], call_type: str | None = None) -> EventV1:
    result = parse(raw, call_type)
    assert isinstance(result, EventV1), result
    return result


def rejected(raw: dict[str, Any], call_type: str | None = None) -> str:
    result = parse(raw, call_type)
    assert isinstance(result, Rejection), result
    assert result.code == INVALID_MESSAGE
    return result.message


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Wishlist Viewed", "userId": "u1", "messageId": "m1"} | fields


@pytest.mark.parametrize(
    ("raw", "call_type", "message"),
    [
        ({"event": "x", "messageId": "m"}, "track", "userId or anonymousId is required"),
        (track(userId=None), None, "userId or anonymousId is required"),
        (track(userId="", anonymousId="  "), None, "userId or anonymousId is required"),
        ({"userId": "u", "messageId": "m"}, "track", "event is required"),
        (track(event=""), None, "event must be a non-empty string, got ''"),
        (track(event="   "), None, "event must be a non-empty string, got '   '"),
        (track(event=5), None, "event must be a non-empty string, got 5"),
        (track(event=None), None, "event must be a non-empty string, got null"),
        (
            track(timestamp="yesterday"),
            None,
            "timestamp is not an ISO 8601 date: 'yesterday'",
        ),
        (track(timestamp=1700000000), None, "timestamp is not an ISO 8601 date: 1700000000"),
        (track(sentAt="2026-13-01T00:00:00Z"), None, "sentAt is not an ISO 8601 date: "),
        (track(originalTimestamp=""), None, "originalTimestamp is not an ISO 8601 date: ''"),
        (track(userId=True), None, "userId must be a string or number, got true"),
        (
            track(anonymousId={"a": 1}),
            None,
            "anonymousId must be a string or number, got an object",
        ),
        (track(messageId=[1]), None, "messageId must be a string or number, got a list"),
        (track(userId=float("nan")), None, "userId must be a finite number smaller than 2^64"),
        (track(properties=[]), None, "properties must be an object, got a list"),
        (track(properties="x"), None, "properties must be an object, got 'x'"),
        (track(context=1), None, "context must be an object, got 1"),
        (track(integrations=False), None, "integrations must be an object, got false"),
        (
            {"type": "identify", "userId": "u", "messageId": "m", "traits": "vip"},
            None,
            "traits must be an object, got 'vip'",
        ),
        (
            {"type": "page", "userId": "u", "messageId": "m", "name": 3},
            None,
            "name must be a string, got 3",
        ),
        (
            {"type": "screen", "userId": "u", "messageId": "m", "category": ["a"]},
            None,
            "category must be a string, got a list",
        ),
        ({"previousId": "a", "messageId": "m"}, "alias", "userId is required"),
        (
            {"anonymousId": "anon", "previousId": "a", "messageId": "m"},
            "alias",
            "userId is required",
        ),
        ({"userId": "u", "messageId": "m"}, "alias", "previousId is required"),
        ({"userId": "u", "messageId": "m"}, "group", "groupId is required"),
        ({"groupId": "g", "messageId": "m"}, "group", "userId or anonymousId is required"),
        ({"userId": "u", "event": "x"}, None, "type is required"),
        (
            {"type": "Track", "userId": "u", "event": "x"},
            None,
            "type must be one of track, identify, page, screen, alias, group, got 'Track'",
        ),
        (
            {"type": 7, "userId": "u"},
            None,
            "type must be one of track, identify, page, screen, alias, group, got 7",
        ),
        (track(writeKey=5), None, "writeKey must be a string, got 5"),
    ],
)
def test_each_rule_has_a_precise_message(
    raw: dict[str, Any], call_type: str | None, message: str
) -> None:
    assert rejected(raw, call_type).startswith(message)


def test_several_errors_report_the_first_and_count_the_rest() -> None:
    text = rejected(track(event="", timestamp="soon", properties=[]))
    assert text == "timestamp is not an ISO 8601 date: 'soon' (and 2 more errors)"


def test_long_inputs_are_shortened_in_messages() -> None:
    text = rejected(track(timestamp="x" * 500))
    assert len(text) < 100
    assert text.endswith("...'")


def test_a_non_object_message_is_rejected() -> None:
    assert parse([1, 2], "track") == Rejection(  # type: ignore[arg-type]
        INVALID_MESSAGE, "message must be a JSON object"
    )


def test_an_unknown_call_type_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown call type 'purchase'"):
        parse(track(), "purchase")


@pytest.mark.parametrize(
    ("sent", "expected"),
    [(42, "42"), (-7, "-7"), (12345678901234567, "12345678901234567"), (42.0, "42"), (4.5, "4.5")],
)
def test_numeric_ids_are_coerced_to_strings(sent: int | float, expected: str) -> None:
    event = accepted(
        {
            "type": "alias",
            "userId": sent,
            "previousId": sent,
            "anonymousId": sent,
            "messageId": sent,
        }
    )
    assert (event.user_id, event.previous_id, event.anonymous_id, event.message_id) == (
        expected,
        expected,
        expected,
        expected,
    )
    assert event.customer_key == expected
    group = accepted({"type": "group", "userId": "u", "groupId": sent, "messageId": "m"})
    assert group.group_id == expected


def test_user_id_is_the_customer_key_and_anonymous_id_the_fallback() -> None:
    assert accepted(track(anonymousId="a1")).customer_key == "u1"
    assert accepted(track(userId=None, anonymousId="a1")).customer_key == "a1"
    assert accepted(track(userId="", anonymousId="a1")).customer_key == "a1"


def test_unknown_top_level_fields_are_accepted_and_kept_out_of_the_envelope() -> None:
    event = accepted(track(_metadata={"bundled": []}, version=2, channel="server"))
    dumped = event.model_dump()
    assert "_metadata" not in dumped
    assert "channel" not in dumped
    assert "_metadata" not in event.properties


def test_nulls_in_optional_fields_are_absent() -> None:
    # the shape analytics-python sends: explicit nulls
    event = accepted(
        {
            "type": "page",
            "userId": None,
            "anonymousId": "a1",
            "messageId": "m",
            "name": None,
            "category": None,
            "properties": None,
            "context": None,
            "integrations": None,
            "timestamp": None,
        }
    )
    assert event.event is None
    assert event.properties == {}
    assert event.context == {}
    assert event.timestamp == NOW


def test_the_endpoint_decides_the_call_type() -> None:
    event = accepted({"type": "identify", "userId": "u", "event": "Signed Up"}, "track")
    assert event.call == "track"
    assert event.event == "Signed Up"


def test_dates_with_offsets_become_utc_and_naive_dates_are_utc() -> None:
    msg = TrackMessage.model_validate(
        track(timestamp="2026-11-22T13:00:00+01:00", sentAt="2026-11-22T12:00:05")
    )
    assert msg.timestamp == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    assert msg.timestamp is not None and msg.timestamp.tzinfo is UTC
    assert msg.sent_at == datetime(2026, 11, 22, 12, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-22T12:00:00Z",
        "2026-11-22T12:00:00.123Z",
        "2026-11-22T12:00:00.123456789Z",
        "2026-11-22T14:00:00+02:00",
        "2026-11-22T12:00:00+0000",
        "20261122T120000Z",
    ],
)
def test_iso_8601_forms_clients_send_are_accepted(text: str) -> None:
    msg = TrackMessage.model_validate(track(timestamp=text))
    assert msg.timestamp is not None
    assert msg.timestamp.replace(microsecond=0) == datetime(2026, 11, 22, 12, tzinfo=UTC)


def test_python_datetimes_are_accepted_from_python_callers() -> None:
    local = datetime(2026, 11, 22, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    msg = TrackMessage.model_validate(track(timestamp=local))
    assert msg.timestamp == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_a_missing_message_id_is_a_fresh_one_every_time() -> None:
    # Segment's behaviour: two identical messages without messageId are two events.
    body = {"type": "track", "userId": "u", "event": "x", "properties": {"a": 1, "b": 2}}
    first, second = accepted(body), accepted(body)
    assert first.message_id != second.message_id
    assert first.event_id != second.event_id
    assert str(uuid.UUID(first.message_id)) == first.message_id


def test_a_blank_message_id_is_a_fresh_one_too() -> None:
    for blank in ("", "  ", None):
        assert uuid.UUID(accepted(track(messageId=blank)).message_id).version == 4


def test_the_caller_supplies_the_id_of_a_message_without_one() -> None:
    body = {"type": "track", "userId": "u", "event": "x"}
    event = parse_message(
        body, source="s", received_at=NOW, call_type=None, new_id=lambda index: f"given-{index}"
    )
    assert isinstance(event, EventV1)
    assert event.message_id == "given-None"
    kept = parse_message(
        body | {"messageId": "m-1"}, source="s", received_at=NOW, call_type=None, new_id=str
    )
    assert isinstance(kept, EventV1)
    assert kept.message_id == "m-1"


def test_models_validate_segment_shapes_directly() -> None:
    identify = IdentifyMessage.model_validate(
        {"userId": 1, "traits": {"email": "a@b.c"}, "messageId": "m"}
    )
    assert identify.user_id == "1"
    assert identify.traits == {"email": "a@b.c"}
    page = PageMessage.model_validate({"anonymousId": "a", "name": "Home", "category": "Docs"})
    assert (page.name, page.category, page.type) == ("Home", "Docs", "page")
    alias = AliasMessage.model_validate({"userId": "new", "previousId": "old"})
    assert alias.previous_id == "old"
    group = GroupMessage.model_validate({"userId": "u", "groupId": "g", "traits": {"n": 1}})
    assert group.group_id == "g"
