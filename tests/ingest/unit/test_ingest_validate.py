"""Entry points: single messages, batches with partial rejection, Kafka record values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from services.ingest.tracking import (
    BATCH_TOO_LARGE,
    INVALID_BATCH,
    INVALID_EVENT_PROPERTIES,
    INVALID_JSON,
    INVALID_MESSAGE,
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    MESSAGE_TOO_LARGE,
    InvalidBody,
    Rejection,
    parse_batch,
    parse_message,
    parse_record_value,
)
from shared.envelope import EventV1

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def track(i: int, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Viewed", "userId": f"u{i}", "messageId": f"m{i}"} | fields


def batch(body: dict[str, Any]) -> tuple[list[tuple[int, EventV1]], list[tuple[int, Rejection]]]:
    accepted, rejected = parse_batch(body, source="shop", received_at=NOW)
    return accepted, rejected


def padding(size: int) -> str:
    return "x" * size


# --- limits -------------------------------------------------------------------------------


def test_limits_are_the_contracts() -> None:
    assert MAX_MESSAGE_BYTES == 32 * 1024
    assert MAX_BATCH_BYTES == 500 * 1024


def test_a_message_at_the_limit_passes_and_one_byte_over_is_too_large() -> None:
    base = track(1, properties={"pad": ""})
    room = MAX_MESSAGE_BYTES - len(orjson.dumps(base))
    at_limit = track(1, properties={"pad": padding(room)})
    assert len(orjson.dumps(at_limit)) == MAX_MESSAGE_BYTES
    assert isinstance(parse_message(at_limit, source="s", received_at=NOW, call_type=None), EventV1)
    over = track(1, properties={"pad": padding(room + 1)})
    result = parse_message(over, source="s", received_at=NOW, call_type=None)
    assert result == Rejection(MESSAGE_TOO_LARGE, "message is over 32 KB of JSON")


def test_values_orjson_cannot_encode_are_rejected_not_crashed_on() -> None:
    result = parse_message(
        track(1, properties={"n": 10**30}), source="s", received_at=NOW, call_type=None
    )
    assert isinstance(result, Rejection)
    assert result.code == INVALID_MESSAGE
    assert result.message.startswith("properties.n must be a finite number smaller than 2^64")


def test_a_skew_correction_out_of_range_is_a_rejection() -> None:
    raw = track(1, timestamp="0001-01-01T00:00:00Z", sentAt="9999-12-31T00:00:00Z")
    result = parse_message(raw, source="s", received_at=NOW, call_type=None)
    assert result == Rejection(
        INVALID_MESSAGE,
        "timestamp is out of range after clock-skew correction: check timestamp and sentAt",
    )


def test_spec_property_errors_have_their_own_code() -> None:
    raw = track(1, event="Order Completed", properties={"total": 5})
    result = parse_message(raw, source="s", received_at=NOW, call_type=None)
    assert result == Rejection(
        INVALID_EVENT_PROPERTIES, "Order Completed: properties.order_id is required"
    )


# --- batches ------------------------------------------------------------------------------


def test_a_partly_bad_batch_accepts_the_good_and_names_the_bad_by_index() -> None:
    members: list[Any] = [
        track(0),
        track(1, userId=None),
        "not an object",
        track(3, event="Order Completed", properties={}),
        track(4, properties={"pad": padding(MAX_MESSAGE_BYTES)}),
        {"userId": "u5", "event": "x"},
        track(6, userId=6),
    ]
    accepted, rejected = batch({"batch": members})
    assert [i for i, _ in accepted] == [0, 6]
    assert [e.customer_key for _, e in accepted] == ["u0", "6"]
    assert rejected == [
        (1, Rejection(INVALID_MESSAGE, "userId or anonymousId is required")),
        (2, Rejection(INVALID_MESSAGE, "message must be a JSON object")),
        (
            3,
            Rejection(INVALID_EVENT_PROPERTIES, "Order Completed: properties.order_id is required"),
        ),
        (4, Rejection(MESSAGE_TOO_LARGE, "message is over 32 KB of JSON")),
        (5, Rejection(INVALID_MESSAGE, "type is required")),
    ]


def test_every_call_type_is_accepted_in_a_batch() -> None:
    members = [
        track(0),
        {"type": "identify", "userId": "u", "traits": {"email": "a@b.c"}},
        {"type": "page", "anonymousId": "a", "name": "Home"},
        {"type": "screen", "anonymousId": "a", "name": "Cart"},
        {"type": "alias", "userId": "u", "previousId": "a"},
        {"type": "group", "userId": "u", "groupId": "g"},
    ]
    accepted, rejected = batch({"batch": members})
    assert rejected == []
    assert [e.call for _, e in accepted] == [
        "track",
        "identify",
        "page",
        "screen",
        "alias",
        "group",
    ]


def test_batch_context_and_sent_at_reach_every_member() -> None:
    body = {
        "batch": [
            track(0, timestamp="2026-11-22T12:09:00Z", context={"ip": "1.1.1.1"}),
            track(1, timestamp="2026-11-22T12:09:00Z", sentAt="2026-11-22T12:09:30Z"),
        ],
        "context": {"library": {"name": "analytics-python"}, "ip": "9.9.9.9"},
        "sentAt": "2026-11-22T12:10:00Z",
        "writeKey": "wk_x",
    }
    accepted, rejected = batch(body)
    assert rejected == []
    (_, first), (_, second) = accepted
    assert first.context == {"library": {"name": "analytics-python"}, "ip": "1.1.1.1"}
    assert second.context == {"library": {"name": "analytics-python"}, "ip": "9.9.9.9"}
    assert first.timestamp == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert first.sent_at == datetime(2026, 11, 22, 12, 10, tzinfo=UTC)
    assert second.timestamp == datetime(2026, 11, 22, 11, 59, 30, tzinfo=UTC)


def test_an_empty_batch_is_fine() -> None:
    assert batch({"batch": []}) == ([], [])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "batch is required"),
        ({"batch": {"type": "track"}}, "batch must be a list, got an object"),
        ({"batch": [], "sentAt": "now"}, "sentAt is not an ISO 8601 date: 'now'"),
        ({"batch": [], "context": []}, "context must be an object, got a list"),
        ([], "batch body must be a JSON object"),
    ],
)
def test_a_body_that_is_no_batch_is_invalid_as_a_whole(body: Any, message: str) -> None:
    with pytest.raises(InvalidBody) as caught:
        parse_batch(body, source="s", received_at=NOW)
    assert caught.value.rejection == Rejection(INVALID_BATCH, message)
    assert str(caught.value) == message


def test_a_duplicate_message_id_in_a_batch_yields_the_same_event_id() -> None:
    accepted, _ = batch({"batch": [track(0), track(0, event="Other")]})
    assert accepted[0][1].event_id == accepted[1][1].event_id


# --- Kafka record values ------------------------------------------------------------------


def record(
    value: bytes,
) -> tuple[list[tuple[int | None, EventV1]], list[tuple[int | None, Rejection]]]:
    accepted, rejected = parse_record_value(value, default_source="storefront", received_at=NOW)
    return accepted, rejected


def test_a_single_message_record_is_one_event_without_index() -> None:
    accepted, rejected = record(orjson.dumps(track(1)))
    assert rejected == []
    [(index, event)] = accepted
    assert index is None
    assert event.source == "storefront"
    assert event.message_id == "m1"


def test_a_batch_record_is_parsed_like_a_batch() -> None:
    value = orjson.dumps({"batch": [track(0), track(1, userId=None), track(2)]})
    accepted, rejected = record(value)
    assert [i for i, _ in accepted] == [0, 2]
    assert rejected == [(1, Rejection(INVALID_MESSAGE, "userId or anonymousId is required"))]


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        (b"{not json", INVALID_JSON, "record is not JSON: "),
        (b"\xff\xfe", INVALID_JSON, "record is not JSON: "),
        (b"", INVALID_JSON, "record is not JSON: "),
        (b"[1, 2]", INVALID_MESSAGE, "record must be a JSON object"),
        (b'"track"', INVALID_MESSAGE, "record must be a JSON object"),
        (b'{"batch": 5}', INVALID_BATCH, "batch must be a list, got 5"),
        (b'{"userId": "u", "event": "x"}', INVALID_MESSAGE, "type is required"),
    ],
)
def test_a_bad_record_is_one_rejection(value: bytes, code: str, message: str) -> None:
    accepted, rejected = record(value)
    assert accepted == []
    [(index, rejection)] = rejected
    assert index is None
    assert rejection.code == code
    assert rejection.message.startswith(message)


def test_record_size_limits() -> None:
    big_message = orjson.dumps(track(1, properties={"pad": padding(MAX_MESSAGE_BYTES)}))
    assert record(big_message) == (
        [],
        [(None, Rejection(MESSAGE_TOO_LARGE, "message is over 32 KB of JSON"))],
    )
    members = [track(i, properties={"pad": padding(20_000)}) for i in range(30)]
    big_batch = orjson.dumps({"batch": members})
    assert len(big_batch) > MAX_BATCH_BYTES
    accepted, rejected = record(big_batch)
    assert accepted == []
    assert rejected == [(None, Rejection(BATCH_TOO_LARGE, "batch is over 500 KB of JSON"))]
    ok_batch = orjson.dumps({"batch": members[:20]})
    accepted, rejected = record(ok_batch)
    assert (len(accepted), rejected) == (20, [])


def test_rejection_renders_as_segments_error_body() -> None:
    assert Rejection(INVALID_MESSAGE, "type is required").as_dict() == {
        "code": "invalid_message",
        "message": "type is required",
    }


def test_what_analytics_python_sends_is_accepted() -> None:
    import json

    from segment.analytics.client import Client
    from segment.analytics.request import DatetimeSerializer

    client = Client("wk_site", send=False)
    at = datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    calls = [
        client.track("u1", "Order Completed", {"order_id": 5, "total": 10.5}, timestamp=at),
        client.identify(42, {"email": "a@b.c"}, timestamp=at),
        client.page(anonymous_id="a1", name="Home", timestamp=at),
        client.screen("u1", name="Cart", timestamp=at),
        client.alias("anon-1", "u1", timestamp=at),
        client.group("u1", 7, {"name": "Acme"}, timestamp=at),
    ]
    body = {"batch": [msg for _, msg in calls], "sentAt": datetime(2026, 11, 22, 12, 0, tzinfo=UTC)}
    body["writeKey"] = "wk_site"
    wire = orjson.loads(json.dumps(body, cls=DatetimeSerializer))
    accepted, rejected = batch(wire)
    assert rejected == []
    events = [e for _, e in accepted]
    assert [e.call for e in events] == ["track", "identify", "page", "screen", "alias", "group"]
    assert [e.customer_key for e in events] == ["u1", "42", "a1", "u1", "u1", "u1"]
    assert events[0].properties == {"order_id": 5, "total": 10.5}
    assert events[4].previous_id == "anon-1"
    assert events[5].group_id == "7"
    assert all(e.timestamp == datetime(2026, 11, 22, 11, 59, tzinfo=UTC) for e in events)
    assert events[0].context["library"]["name"] == "analytics-python"
