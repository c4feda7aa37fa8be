"""Normalization into EventV1 and Segment's clock-skew correction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from services.ingest.tracking.messages import MESSAGE_MODELS
from services.ingest.tracking.normalize import correct_timestamp, merge_context, normalize
from shared.envelope import EventV1, decode_event
from shared.ids import event_id

RECEIVED = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


def norm(raw: dict[str, Any], **kwargs: Any) -> EventV1:
    message = MESSAGE_MODELS[raw["type"]].model_validate(raw)
    kwargs.setdefault("new_message_id", lambda: "fresh-id")
    return normalize(message, source="shop-eu", received_at=RECEIVED, **kwargs)


# --- correct_timestamp ------------------------------------------------------------------


def test_skew_is_corrected_by_the_difference_between_received_and_sent() -> None:
    # the device clock is 5 minutes fast: it says it sent at 12:05 what we got at 12:00
    timestamp = datetime(2026, 11, 22, 12, 4, 0, tzinfo=UTC)
    sent_at = datetime(2026, 11, 22, 12, 5, 0, tzinfo=UTC)
    assert correct_timestamp(timestamp, sent_at, RECEIVED) == datetime(
        2026, 11, 22, 11, 59, 0, tzinfo=UTC
    )


def test_missing_timestamp_is_the_time_of_receipt() -> None:
    assert correct_timestamp(None, RECEIVED - timedelta(hours=1), RECEIVED) == RECEIVED


def test_missing_sent_at_leaves_the_timestamp_unchanged() -> None:
    timestamp = datetime(2026, 1, 1, tzinfo=UTC)
    assert correct_timestamp(timestamp, None, RECEIVED) == timestamp


def test_naive_datetimes_are_taken_as_utc_and_results_are_utc_aware() -> None:
    result = correct_timestamp(
        datetime(2026, 11, 22, 11, 0), datetime(2026, 11, 22, 11, 30), datetime(2026, 11, 22, 12, 0)
    )
    assert result == datetime(2026, 11, 22, 11, 30, tzinfo=UTC)
    assert result.tzinfo is UTC
    assert correct_timestamp(None, None, datetime(2026, 1, 1)).tzinfo is UTC
    assert correct_timestamp(datetime(2026, 1, 1), None, RECEIVED).tzinfo is UTC


def test_offsets_are_converted_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    result = correct_timestamp(datetime(2026, 11, 22, 14, 0, tzinfo=plus_two), None, RECEIVED)
    assert result.tzinfo is UTC
    assert result == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


moments = st.datetimes(
    min_value=datetime(1990, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
)


@given(timestamp=moments, sent_at=moments, received_at=moments)
def test_corrected_minus_timestamp_is_received_minus_sent(
    timestamp: datetime, sent_at: datetime, received_at: datetime
) -> None:
    corrected = correct_timestamp(timestamp, sent_at, received_at)
    assert corrected.tzinfo is UTC
    if sent_at >= timestamp:
        assert corrected - timestamp == received_at - sent_at
    else:  # sent before it happened: sentAt contradicts the message and is ignored
        assert corrected == timestamp


def test_a_sent_at_before_the_timestamp_is_ignored_not_applied() -> None:
    # sentAt in year 1 would move an event of today to year 4052
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    today = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    assert correct_timestamp(today, year_one, RECEIVED) == today


@given(timestamp=moments, sent_at=moments, received_at=moments)
def test_naive_input_means_utc(
    timestamp: datetime, sent_at: datetime, received_at: datetime
) -> None:
    def naive(value: datetime) -> datetime:
        return value.astimezone(UTC).replace(tzinfo=None)

    assert correct_timestamp(naive(timestamp), naive(sent_at), naive(received_at)) == (
        correct_timestamp(timestamp, sent_at, received_at)
    )


# --- normalize ----------------------------------------------------------------------------


def test_track_becomes_an_event_with_its_name_properties_and_derived_id() -> None:
    event = norm(
        {
            "type": "track",
            "event": "Product Added",
            "userId": "u1",
            "anonymousId": "a1",
            "messageId": "m-1",
            "properties": {"price": 20},
            "context": {"ip": "1.2.3.4", "traits": {"email": "a@b.c"}},
            "timestamp": "2026-11-22T11:58:00Z",
            "sentAt": "2026-11-22T11:59:00Z",
        }
    )
    assert event.call == "track"
    assert event.event == "Product Added"
    assert event.source == "shop-eu"
    assert event.message_id == "m-1"
    assert event.event_id == event_id("shop-eu", "m-1")
    assert event.customer_key == "u1"
    assert (event.user_id, event.anonymous_id) == ("u1", "a1")
    assert event.properties == {"price": 20}
    assert event.traits == {"email": "a@b.c"}
    assert event.context == {"ip": "1.2.3.4", "traits": {"email": "a@b.c"}}
    assert event.timestamp == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert event.original_timestamp == datetime(2026, 11, 22, 11, 58, tzinfo=UTC)
    assert event.sent_at == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert event.received_at == RECEIVED
    assert decode_event(event.to_bytes()) == event


def test_identify_traits_overlay_context_traits() -> None:
    event = norm(
        {
            "type": "identify",
            "userId": "u1",
            "traits": {"email": "new@b.c", "plan": "pro"},
            "context": {"traits": {"email": "old@b.c", "timezone": "Europe/Paris"}},
        }
    )
    assert event.event is None
    assert event.properties == {}
    assert event.traits == {"email": "new@b.c", "plan": "pro", "timezone": "Europe/Paris"}


def test_group_traits_are_the_groups_own() -> None:
    event = norm(
        {
            "type": "group",
            "anonymousId": "a1",
            "groupId": "acme",
            "traits": {"name": "Acme"},
            "context": {"traits": {"email": "person@acme.com"}},
        }
    )
    assert event.group_id == "acme"
    assert event.customer_key == "a1"
    assert event.traits == {"name": "Acme"}


def test_alias_keeps_the_previous_id() -> None:
    event = norm({"type": "alias", "userId": "u1", "previousId": "anon-9"})
    assert (event.call, event.customer_key, event.previous_id) == ("alias", "u1", "anon-9")


def test_page_and_screen_names_become_the_event_and_join_properties() -> None:
    page = norm(
        {
            "type": "page",
            "userId": "u",
            "name": "Pricing",
            "category": "Docs",
            "properties": {"url": "/p"},
        }
    )
    assert page.event == "Pricing"
    assert page.properties == {"url": "/p", "name": "Pricing", "category": "Docs"}
    screen = norm(
        {"type": "screen", "userId": "u", "name": "Home", "properties": {"name": "Start"}}
    )
    assert screen.event == "Home"
    assert screen.properties == {"name": "Start"}  # what the client put in properties wins
    unnamed = norm({"type": "page", "userId": "u"})
    assert (unnamed.event, unnamed.properties) == (None, {})


def test_non_object_context_traits_are_not_traits() -> None:
    event = norm({"type": "track", "userId": "u", "event": "x", "context": {"traits": "vip"}})
    assert event.traits == {}
    assert event.context == {"traits": "vip"}


def test_original_timestamp_stands_in_for_a_missing_timestamp() -> None:
    event = norm(
        {
            "type": "track",
            "userId": "u",
            "event": "x",
            "originalTimestamp": "2026-11-22T12:10:00Z",
            "sentAt": "2026-11-22T12:11:00Z",
        }
    )
    assert event.timestamp == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    assert event.original_timestamp == datetime(2026, 11, 22, 12, 10, tzinfo=UTC)


def test_batch_context_merges_under_the_messages_context() -> None:
    batch_context = {
        "library": {"name": "analytics-node", "version": "1.0"},
        "ip": "9.9.9.9",
        "locale": "fr-FR",
    }
    event = norm(
        {
            "type": "track",
            "userId": "u",
            "event": "x",
            "context": {"library": {"version": "2.0"}, "ip": "1.1.1.1"},
        },
        batch_context=batch_context,
    )
    assert event.context == {
        "library": {"name": "analytics-node", "version": "2.0"},
        "ip": "1.1.1.1",
        "locale": "fr-FR",
    }
    assert batch_context["library"] == {"name": "analytics-node", "version": "1.0"}


def test_merge_context_never_modifies_its_arguments() -> None:
    below = {"a": {"b": 1}, "c": 1}
    above = {"a": {"d": 2}, "c": {"e": 3}}
    assert merge_context(below, above) == {"a": {"b": 1, "d": 2}, "c": {"e": 3}}
    assert below == {"a": {"b": 1}, "c": 1}
    assert above == {"a": {"d": 2}, "c": {"e": 3}}
    assert merge_context({}, above) == above
    assert merge_context(below, {}) == below


def test_batch_sent_at_applies_unless_the_message_has_its_own() -> None:
    raw = {"type": "track", "userId": "u", "event": "x", "timestamp": "2026-11-22T12:00:00Z"}
    batch_sent = datetime(2026, 11, 22, 12, 1, tzinfo=UTC)
    from_batch = norm(raw, batch_sent_at=batch_sent)
    assert from_batch.sent_at == batch_sent
    assert from_batch.timestamp == datetime(2026, 11, 22, 11, 59, tzinfo=UTC)
    own = norm(raw | {"sentAt": "2026-11-22T12:00:00Z"}, batch_sent_at=batch_sent)
    assert own.timestamp == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_received_at_given_naive_is_utc() -> None:
    message = MESSAGE_MODELS["track"].model_validate({"userId": "u", "event": "x"})
    event = normalize(
        message, source="s", new_message_id=lambda: "m", received_at=datetime(2026, 11, 22, 12, 0)
    )
    assert event.received_at == RECEIVED
    assert event.timestamp == RECEIVED
