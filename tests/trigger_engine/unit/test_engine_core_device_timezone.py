"""Segment's ``context.timezone`` (the device's zone): kept on the profile when it is a valid
IANA name, used by quiet hours when ``traits.timezone`` is absent or invalid (what the shop
said wins), merged with the profile, and absent from states stored before it existed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
from engine_core_support import at, event, identify, of_type, rule

from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.policy import Allow, Defer, SendPolicy, check_send
from services.trigger_engine.core.profile import Profile, apply_event, merge
from services.trigger_engine.core.quiet_hours import customer_zone
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from services.trigger_engine.core.state import CustomerState, decode_state, encode_state
from shared.envelope import Event

NIGHT = SendPolicy.model_validate(
    {"quiet_hours": {"start": "21:00", "end": "08:00"}, "default_timezone": "Europe/Berlin"}
)
# T0 (engine_core_support) is 2026-03-02 09:00 UTC: 04:00 in New York (quiet until 13:00 UTC),
# 18:00 in Tokyo (not quiet), 10:00 in Berlin (not quiet).
NY_MORNING = datetime(2026, 3, 2, 13, tzinfo=UTC)
INVALID = ["Mars/Olympus", "", "   ", "localtime", "../../etc/passwd", "x" * 500, 5, None, {}]


def with_context(item: Event, **context: Any) -> Event:
    return msgspec.structs.replace(item, context=context)


def fold(*events: Event) -> Profile:
    profile = Profile(customer_key="user-1")
    for item in events:
        profile = apply_event(profile, item)
    return profile


def test_the_profile_keeps_the_last_valid_device_zone_and_ignores_invalid_ones() -> None:
    profile = fold(
        with_context(event("Page", at()), timezone="Asia/Tokyo"),
        with_context(event("Page", at(minutes=1)), timezone="America/New_York "),
    )
    assert profile.context_timezone == "America/New_York"
    assert "timezone" not in profile.traits  # the device's zone is not a trait
    for bad in INVALID:
        later = apply_event(profile, with_context(event("Page", at(minutes=2)), timezone=bad))
        assert later.context_timezone == "America/New_York", bad
    assert fold(event("Page", at())).context_timezone is None  # no context: nothing


def test_traits_timezone_wins_over_the_device_zone() -> None:
    now = at()  # 04:00 in New York, 18:00 in Tokyo, 10:00 in Berlin (the default)
    tokyo_shop, ny_device = {"timezone": "Asia/Tokyo"}, "America/New_York"
    assert check_send(NIGHT, tokyo_shop, {}, "email", now=now, device_timezone=ny_device) == (
        Allow()
    )
    assert check_send(NIGHT, {}, {}, "email", now=now, device_timezone=ny_device) == Defer(
        NY_MORNING
    )
    assert check_send(NIGHT, {}, {}, "email", now=now) == Allow()  # Berlin
    assert customer_zone("Asia/Tokyo", "UTC", "America/New_York") == ZoneInfo("Asia/Tokyo")
    assert customer_zone(None, "UTC", "America/New_York") == ZoneInfo("America/New_York")


@pytest.mark.parametrize("bad", INVALID)
def test_an_invalid_zone_falls_through_to_the_next_one(bad: Any) -> None:
    traits = {} if bad is None else {"timezone": bad}
    assert customer_zone(bad, "Europe/Berlin", "America/New_York") == ZoneInfo("America/New_York")
    assert customer_zone(bad, "Europe/Berlin", bad) == ZoneInfo("Europe/Berlin")
    assert check_send(NIGHT, traits, {}, "email", now=at(), device_timezone="America/New_York") == (
        Defer(NY_MORNING)
    )


def test_a_merge_keeps_the_known_customers_device_zone_else_the_anonymous_one() -> None:
    known = Profile(customer_key="user-1", context_timezone="Asia/Tokyo")
    anonymous = Profile(customer_key="anon-1", context_timezone="America/New_York")
    assert merge(known, anonymous).context_timezone == "Asia/Tokyo"
    assert merge(Profile(customer_key="user-1"), anonymous).context_timezone == "America/New_York"
    assert merge(Profile(customer_key="user-1"), Profile(customer_key="a")).context_timezone is None


def test_states_stored_before_the_device_zone_existed_still_load_and_round_trip() -> None:
    state = CustomerState.new("user-1")
    stored = json.loads(msgspec.json.encode(state))
    del stored["profile"]["context_timezone"]  # as written by a release without it
    old = decode_state(json.dumps(stored).encode())
    assert old.profile.context_timezone is None
    assert old == state

    state.profile.context_timezone = "Asia/Kathmandu"
    again = decode_state(encode_state(state))
    assert again.profile.context_timezone == "Asia/Kathmandu"


def test_a_send_is_deferred_in_the_devices_zone_when_the_shop_gave_none() -> None:
    instant = rule(key="cart", steps=[{"send": {"channel": "email", "template": "cart"}}])
    sim = Simulator(rules=RuleSet.of([instant]), lifecycle=default_lifecycle(), policy=NIGHT)
    sim.feed(
        with_context(identify(at(minutes=-1), email="a@example.com"), timezone="America/New_York"),
        now=at(minutes=-1),
    )
    produced = sim.feed(event("Product Added", at(), properties={"price": 5}), now=at())
    [deferred] = of_type(produced, "send_deferred")
    assert deferred.until == NY_MORNING
    assert of_type(produced, "emit_action") == []

    # The shop's traits.timezone overrides the device: in Tokyo it is evening, not night.
    sim = Simulator(rules=RuleSet.of([instant]), lifecycle=default_lifecycle(), policy=NIGHT)
    sim.feed(
        with_context(identify(at(minutes=-1), timezone="Asia/Tokyo"), timezone="America/New_York"),
        now=at(minutes=-1),
    )
    produced = sim.feed(event("Product Added", at(), properties={"price": 5}), now=at())
    assert of_type(produced, "send_deferred") == []
    assert len(of_type(produced, "emit_action")) == 1
