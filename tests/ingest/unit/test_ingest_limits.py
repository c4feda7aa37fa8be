"""Input limits: ids, NUL characters, nesting, counts, number range and event-time range.
Each rejection names the field and says what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from services.ingest.tracking import (
    INVALID_BATCH,
    INVALID_MESSAGE,
    InvalidBody,
    Rejection,
    parse_batch,
    parse_message,
    parse_record_value,
)
from services.ingest.tracking.limits import MAX_DEPTH, MAX_ITEMS
from services.ingest.tracking.messages import MAX_ID_LENGTH
from shared.envelope import EventV1

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u", "event": "Viewed", "messageId": "m"} | fields


def parse(raw: dict[str, Any]) -> EventV1 | Rejection:
    return parse_message(raw, source="shop", received_at=NOW, call_type=None)


def rejected(raw: dict[str, Any]) -> str:
    result = parse(raw)
    assert isinstance(result, Rejection), result
    assert result.code == INVALID_MESSAGE
    return result.message


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


ID_FIELDS = ("userId", "anonymousId", "messageId")


@pytest.mark.parametrize("field", ID_FIELDS)
def test_ids_may_be_100_characters_and_no_more(field: str) -> None:
    assert MAX_ID_LENGTH == 100
    assert isinstance(parse(track(**{field: "x" * 100})), EventV1)
    assert rejected(track(**{field: "x" * 101})) == (
        f"{field} must be at most 100 characters, got 101"
    )


def test_a_10_kb_user_id_is_refused_not_accepted() -> None:
    assert rejected(track(userId="u" * 10_240)).startswith("userId must be at most 100")


def test_group_and_previous_ids_are_bounded_too() -> None:
    group = {"type": "group", "userId": "u", "groupId": "g" * 101}
    alias = {"type": "alias", "userId": "u", "previousId": "p" * 101}
    assert rejected(group) == "groupId must be at most 100 characters, got 101"
    assert rejected(alias) == "previousId must be at most 100 characters, got 101"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (track(userId="user\x00-42"), "userId"),
        (track(anonymousId="a\x00"), "anonymousId"),
        (track(messageId="m\x00"), "messageId"),
        (track(event="Product\x00Viewed"), "event"),
        (track(properties={"sku": "a\x00b"}), "properties.sku"),
        (track(properties={"products": [{"name": "x\x00"}]}), "properties.products[0].name"),
        (track(context={"page": {"url": "\x00"}}), "context.page.url"),
    ],
)
def test_a_nul_character_anywhere_is_refused_with_its_place(
    raw: dict[str, Any], where: str
) -> None:
    assert rejected(raw) == f"{where} contains a NUL character (\\u0000); remove it"


def test_a_nul_character_in_a_key_is_refused() -> None:
    message = rejected(track(traits={"a\x00b": 1}))
    assert message.startswith("traits has a key with a NUL character")


def test_nesting_is_bounded() -> None:
    # the message is level 1, properties level 2: MAX_DEPTH - 2 more levels fit
    assert isinstance(parse(track(properties=nested(MAX_DEPTH - 2))), EventV1)
    assert rejected(track(properties=nested(MAX_DEPTH - 1))).endswith(
        f"is nested more than {MAX_DEPTH} levels deep"
    )


def test_properties_nested_500_deep_are_a_rejection() -> None:
    text = b'{"a":' * 500 + b"{}" + b"}" * 500
    body = orjson.loads(
        b'{"type": "track", "userId": "u", "event": "V", "properties": ' + text + b"}"
    )
    assert rejected(body).startswith("properties.a.a")


def test_lists_count_as_levels() -> None:
    deep: Any = []
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert "nested more than" in rejected(track(properties={"l": deep}))


def test_keys_and_items_per_container_are_bounded() -> None:
    many = {f"k{i}": i for i in range(MAX_ITEMS + 1)}
    assert rejected(track(properties=many)) == (
        f"properties has {MAX_ITEMS + 1} keys; at most {MAX_ITEMS} allowed"
    )
    items = list(range(MAX_ITEMS + 1))
    assert rejected(track(properties={"l": items})) == (
        f"properties.l has {MAX_ITEMS + 1} items; at most {MAX_ITEMS} allowed"
    )
    assert isinstance(parse(track(properties={"l": items[:MAX_ITEMS]})), EventV1)


def test_an_integer_beyond_64_bits_is_not_silently_a_float() -> None:
    # orjson reads 2^64+1 as the float 1.8446744073709552e19: refused, not taken as revenue
    raw = orjson.loads(
        b'{"type": "track", "userId": "u", "event": "Order Completed", "messageId": "m",'
        b' "properties": {"order_id": "o", "total": 18446744073709551617}}'
    )
    assert rejected(raw).startswith(
        "properties.total must be a finite number smaller than 2^64 (about 1.8e19) in magnitude"
    )


def test_numbers_below_2_to_the_64_pass() -> None:
    ok = parse(track(properties={"big": 2**63, "small": -1.5e18, "tiny": 1e-300}))
    assert isinstance(ok, EventV1)


def test_non_finite_numbers_from_python_callers_are_refused() -> None:
    for value in (float("inf"), float("-inf"), float("nan")):
        assert "must be a finite number" in rejected(track(properties={"x": value}))


# --- event time -----------------------------------------------------------------------------


def test_event_times_before_2000_are_refused() -> None:
    message = rejected(track(timestamp="1999-12-31T23:59:59Z"))
    assert message.startswith("timestamp 1999-12-31T23:59:59+00:00")
    assert "between 2000-01-01 and one day after receipt" in message


def test_event_times_more_than_a_day_ahead_are_refused() -> None:
    later = (NOW + timedelta(days=1, seconds=1)).isoformat()
    assert "out of range" in rejected(track(timestamp=later))
    almost = (NOW + timedelta(hours=23)).isoformat()
    assert isinstance(parse(track(timestamp=almost)), EventV1)


def test_year_9999_is_refused_not_passed_on() -> None:
    assert "out of range" in rejected(track(timestamp="9999-12-31T00:00:00Z"))


def test_a_date_that_overflows_in_utc_is_a_rejection_not_a_crash() -> None:
    assert rejected(track(timestamp="9999-12-31T23:59:59-05:00")) == (
        "timestamp is not an ISO 8601 date: '9999-12-31T23:59:59-05:00'"
    )


def test_a_sent_at_of_year_one_does_not_move_the_event_to_year_4052() -> None:
    event = parse(track(timestamp="2026-11-22T11:00:00Z", sentAt="0001-01-01T00:00:00Z"))
    assert isinstance(event, EventV1)
    assert event.timestamp == datetime(2026, 11, 22, 11, 0, tzinfo=UTC)


def test_skew_correction_that_lands_out_of_range_is_refused() -> None:
    # a believable sentAt, but a timestamp 30 years before it: the event lands in 1996
    message = rejected(track(timestamp="1996-11-22T12:00:00Z", sentAt="2026-11-22T12:00:00Z"))
    assert "after clock-skew correction, sentAt 2026-11-22T12:00:00+00:00" in message


# --- batches and Kafka records ---------------------------------------------------------------


def test_a_bad_batch_context_rejects_the_whole_batch() -> None:
    with pytest.raises(InvalidBody) as caught:
        parse_batch({"batch": [track()], "context": {"ip": "1\x00"}}, source="s", received_at=NOW)
    assert caught.value.rejection == Rejection(
        INVALID_BATCH, "context.ip contains a NUL character (\\u0000); remove it"
    )


def test_a_batch_member_over_a_limit_rejects_only_itself() -> None:
    accepted, rejected_members = parse_batch(
        {"batch": [track(), track(userId="x" * 101), track(properties=nested(100))]},
        source="s",
        received_at=NOW,
    )
    assert [i for i, _ in accepted] == [0]
    assert [i for i, _ in rejected_members] == [1, 2]


def test_a_kafka_record_gets_the_same_limits() -> None:
    record = orjson.dumps(track(properties={"a": "\x00"}))
    result = parse_record_value(record, default_source="s", received_at=NOW)
    assert result.accepted == []
    assert result.rejected == [
        (
            None,
            Rejection(
                INVALID_MESSAGE, "properties.a contains a NUL character (\\u0000); remove it"
            ),
        )
    ]
