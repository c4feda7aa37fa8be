"""The pure send policy: the model, consent from traits, quiet hours across time zones and
DST, rolling frequency caps; and properties that must hold for any input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.trigger_engine.core.consent import consent_of
from services.trigger_engine.core.policy import (
    Allow,
    Defer,
    SendPolicy,
    Skip,
    check_send,
    merge_logs,
    prune,
    record_send,
)
from services.trigger_engine.core.quiet_hours import customer_zone, is_quiet

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NIGHT = {"start": "21:00", "end": "08:00"}
NY = {"timezone": "America/New_York"}


def policy(**fields: Any) -> SendPolicy:
    return SendPolicy.model_validate(fields)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- the model --------------------------------------------------------------------------------


def test_the_empty_policy_allows_everything_consent_permits() -> None:
    empty = SendPolicy()
    assert empty.caps == {} and empty.quiet_hours is None and empty.default_timezone == "UTC"
    assert check_send(empty, {}, {}, "email", now=utc(2026, 1, 1, 3)) == Allow()
    assert check_send(empty, {}, {}, "push", now=utc(2026, 1, 1, 3)) == Allow()


def test_policy_round_trips_through_json() -> None:
    typed = policy(
        caps={"email": [{"max": 3, "per": "P1D"}, {"max": 10, "per": "P7D"}]},
        quiet_hours={**NIGHT, "channels": ["sms", "push"]},
        default_timezone="Europe/Berlin",
        consent={"email": "opt_in"},
    )
    dumped = typed.model_dump(mode="json")
    assert dumped["caps"]["email"][1] == {"max": 10, "per": "P7D"}
    assert dumped["quiet_hours"] == {"start": "21:00", "end": "08:00", "channels": ["sms", "push"]}
    assert dumped["consent"] == {
        "email": "opt_in",
        "sms": "opt_in",
        "push": "opt_out",
        "webhook": "opt_out",
    }
    assert SendPolicy.model_validate(dumped) == typed


def test_quiet_hours_take_seconds_when_given() -> None:
    precise = policy(quiet_hours={"start": "21:00:00", "end": "07:59:30"})
    assert precise.model_dump(mode="json")["quiet_hours"]["start"] == "21:00"
    assert precise.model_dump(mode="json")["quiet_hours"]["end"] == "07:59:30"
    assert check_send(precise, {}, {}, "push", now=utc(2026, 1, 5, 7, 59)) == Defer(
        utc(2026, 1, 5, 7, 59, 30)
    )


@pytest.mark.parametrize(
    ("fields", "loc", "message"),
    [
        ({"quiet_hours": {"start": "9pm", "end": "08:00"}}, "quiet_hours.start", "'HH:MM'"),
        ({"quiet_hours": {"start": "24:00", "end": "08:00"}}, "quiet_hours.start", "'HH:MM'"),
        ({"quiet_hours": {"start": "08:00", "end": "08:00"}}, "quiet_hours", "must differ"),
        ({"quiet_hours": {"start": "21:00"}}, "quiet_hours.end", "Field required"),
        ({"caps": {"fax": [{"max": 1, "per": "P1D"}]}}, "caps.fax.[key]", "'email'"),
        ({"caps": {"email": [{"max": 1, "per": "PT0S"}]}}, "caps.email.0.per", "longer than zero"),
        ({"caps": {"email": [{"max": 1, "per": "P2Y"}]}}, "caps.email.0.per", "years and months"),
        ({"caps": {"email": [{"max": 1, "per": "P400D"}]}}, "caps.email.0.per", "at most P365D"),
        ({"caps": {"email": [{"max": -1, "per": "P1D"}]}}, "caps.email.0.max", "greater than"),
        (
            {"caps": {"email": [{"max": 1, "per": "P1D"}, {"max": 2, "per": "PT24H"}]}},
            "caps",
            "same window",
        ),
        ({"default_timezone": "Mars/Olympus"}, "default_timezone", "unknown IANA time zone"),
        ({"default_timezone": "localtime"}, "default_timezone", "unknown IANA time zone"),
        ({"consent": {"email": "maybe"}}, "consent.email", "'opt_in' or 'opt_out'"),
        ({"consent": {"fax": "opt_in"}}, "consent.fax", "Extra inputs"),
        ({"frequency": {}}, "frequency", "Extra inputs"),
    ],
)
def test_invalid_policies_name_the_field_and_the_problem(
    fields: dict[str, Any], loc: str, message: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        SendPolicy.model_validate(fields)
    errors = {".".join(str(p) for p in e["loc"]): e["msg"] for e in raised.value.errors()}
    assert loc in errors, errors
    assert message in errors[loc]


# --- consent ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traits", "channel", "expected"),
    [
        ({}, "email", "unknown"),
        ({"unsubscribed": True}, "email", "denied"),
        ({"unsubscribed": True, "sms_opt_in": True}, "sms", "denied"),
        ({"unsubscribed": False}, "email", "unknown"),
        ({"unsubscribed": "yes"}, "push", "denied"),
        ({"consent": {"email": False}}, "email", "denied"),
        ({"consent": {"email": False}}, "sms", "unknown"),
        ({"consent": {"sms": True}}, "sms", "granted"),
        ({"consent": False}, "webhook", "denied"),
        ({"consent": True}, "sms", "granted"),
        ({"email_opt_in": True}, "email", "granted"),
        ({"sms_opt_in": "false"}, "sms", "denied"),
        ({"sms_opt_in": 1}, "sms", "granted"),
        ({"sms_opt_in": "TRUE"}, "sms", "granted"),
        ({"sms_opt_in": "sure"}, "sms", "unknown"),
        ({"sms_opt_in": None}, "sms", "unknown"),
        ({"sms_opt_in": True, "consent": {"sms": False}}, "sms", "denied"),
        ({"consent": "granted"}, "email", "unknown"),
    ],
)
def test_consent_is_read_from_segment_style_traits(
    traits: dict[str, Any], channel: str, expected: str
) -> None:
    assert consent_of(traits, channel) == expected


def test_opt_in_channels_need_a_yes_and_opt_out_channels_a_no_to_skip() -> None:
    now = utc(2026, 5, 1, 12)
    sms = policy()  # sms is opt-in by default
    assert check_send(sms, {}, {}, "sms", now=now) == Skip(
        "no_opt_in", "sms requires opt-in and the customer has not opted in"
    )
    assert check_send(sms, {"sms_opt_in": True}, {}, "sms", now=now) == Allow()
    assert check_send(sms, {"email_opt_in": False}, {}, "email", now=now).kind == "skip"
    strict = policy(consent={"email": "opt_in"})
    assert check_send(strict, {}, {}, "email", now=now) == Skip(
        "no_opt_in", "email requires opt-in and the customer has not opted in"
    )


# --- quiet hours ------------------------------------------------------------------------------


def test_quiet_hours_defer_to_the_end_of_the_window_in_the_customers_zone() -> None:
    night = policy(quiet_hours=NIGHT)
    # 02:00 UTC is 22:00 the evening before in New York (EDT): defer to 08:00 EDT = 12:00 UTC.
    assert check_send(night, NY, {}, "email", now=utc(2026, 6, 2, 2)) == Defer(utc(2026, 6, 2, 12))
    # 09:00 UTC is 05:00 in New York: still quiet, same end.
    assert check_send(night, NY, {}, "email", now=utc(2026, 6, 2, 9)) == Defer(utc(2026, 6, 2, 12))
    # 12:00 UTC is 08:00 in New York: the window is half-open, so it is over.
    assert check_send(night, NY, {}, "email", now=utc(2026, 6, 2, 12)) == Allow()
    # The same moments for a customer in Tokyo (UTC+9): 11:00 and 18:00 local.
    tokyo = {"timezone": "Asia/Tokyo"}
    assert check_send(night, tokyo, {}, "email", now=utc(2026, 6, 2, 2)) == Allow()
    assert check_send(night, tokyo, {}, "email", now=utc(2026, 6, 2, 9)) == Allow()
    assert check_send(night, tokyo, {}, "email", now=utc(2026, 6, 2, 13)) == Defer(
        utc(2026, 6, 2, 23)
    )


def test_a_daytime_window_does_not_span_midnight() -> None:
    lunch = policy(quiet_hours={"start": "12:00", "end": "14:00"})
    assert check_send(lunch, {}, {}, "push", now=utc(2026, 1, 5, 11, 59)) == Allow()
    assert check_send(lunch, {}, {}, "push", now=utc(2026, 1, 5, 13)) == Defer(utc(2026, 1, 5, 14))
    assert check_send(lunch, {}, {}, "push", now=utc(2026, 1, 5, 23)) == Allow()


def test_bad_or_missing_time_zones_fall_back_to_the_default_zone() -> None:
    night = policy(quiet_hours=NIGHT, default_timezone="Europe/Berlin")
    now = utc(2026, 7, 1, 20)  # 22:00 in Berlin (CEST): quiet until 08:00 = 06:00 UTC
    expected = Defer(utc(2026, 7, 2, 6))
    for bad in ({}, {"timezone": "Mars/Olympus"}, {"timezone": ""}, {"timezone": 5}):
        assert check_send(night, bad, {}, "sms", now=now).kind == "skip"  # sms: no opt-in
        assert check_send(night, {**bad, "sms_opt_in": True}, {}, "sms", now=now) == expected
    for hostile in ("../../etc/passwd", "/etc/localtime", "localtime", "x" * 500):
        assert customer_zone(hostile, "Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert customer_zone("Asia/Kathmandu ", "UTC") == ZoneInfo("Asia/Kathmandu")
    assert customer_zone("Nowhere/Special", "Also/Nowhere") == UTC


def test_quiet_hours_follow_daylight_saving_changes() -> None:
    night = policy(quiet_hours=NIGHT)
    # Spring forward (New York, 8 March 2026): 22:00 EST on the 7th -> 08:00 EDT on the 8th.
    assert check_send(night, NY, {}, "email", now=utc(2026, 3, 8, 3)) == Defer(utc(2026, 3, 8, 12))
    # Fall back (1 November 2026): 22:00 EDT on 31 October -> 08:00 EST on the 1st.
    assert check_send(night, NY, {}, "email", now=utc(2026, 11, 1, 2)) == Defer(
        utc(2026, 11, 1, 13)
    )


def test_an_end_time_inside_the_dst_gap_or_overlap_still_ends_outside_the_window() -> None:
    # 01:00-02:30 on spring-forward night: 02:30 does not exist; the spell ends at the jump
    # from 02:00 EST to 03:00 EDT (07:00 UTC).
    gap = policy(quiet_hours={"start": "01:00", "end": "02:30"})
    assert check_send(gap, NY, {}, "push", now=utc(2026, 3, 8, 6, 30)) == Defer(utc(2026, 3, 8, 7))
    # 01:30-00:30 (a long window) in Santiago, 21 August 2011: midnight jumped to 01:00, so
    # the only free half hour that night is 01:00-01:30 local, right after the jump.
    long = policy(quiet_hours={"start": "01:30", "end": "00:30"})
    chile = {"timezone": "America/Santiago"}
    assert check_send(long, chile, {}, "push", now=utc(2011, 8, 21, 1)) == Defer(
        utc(2011, 8, 21, 4)
    )
    # 01:30-02:30 on fall-back night in New York: at 01:59 EDT the clock falls back to
    # 01:00 EST, out of the window.
    back = policy(quiet_hours={"start": "01:30", "end": "02:30"})
    assert check_send(back, NY, {}, "push", now=utc(2026, 11, 1, 5, 45)) == Defer(
        utc(2026, 11, 1, 6)
    )
    # 00:30-01:30 on fall-back night: 01:10 EST (the second 01:10) ends at 01:30 EST.
    overlap = policy(quiet_hours={"start": "00:30", "end": "01:30"})
    assert check_send(overlap, NY, {}, "push", now=utc(2026, 11, 1, 6, 10)) == Defer(
        utc(2026, 11, 1, 6, 30)
    )


def test_quiet_hours_can_be_limited_to_some_channels() -> None:
    phones = policy(quiet_hours={**NIGHT, "channels": ["sms", "push"]})
    night = utc(2026, 6, 2, 2)
    assert check_send(phones, NY, {}, "email", now=night) == Allow()
    assert check_send(phones, NY, {}, "push", now=night).kind == "defer"


# --- frequency caps ---------------------------------------------------------------------------


def test_caps_count_sends_in_a_rolling_window_per_channel() -> None:
    capped = policy(caps={"email": [{"max": 2, "per": "P1D"}, {"max": 3, "per": "P7D"}]})
    t0 = utc(2026, 4, 1, 10)
    log = record_send(capped, {}, "email", at=t0)
    log = record_send(capped, log, "email", at=t0 + timedelta(hours=1))
    assert check_send(capped, {}, log, "email", now=t0 + timedelta(hours=2)) == Skip(
        "frequency_capped", "email: 2 per P1D reached"
    )
    assert check_send(capped, {}, log, "push", now=t0 + timedelta(hours=2)) == Allow()
    # Exactly one window after the first send it no longer counts.
    assert check_send(capped, {}, log, "email", now=t0 + timedelta(days=1)) == Allow()
    log = record_send(capped, log, "email", at=t0 + timedelta(days=1))
    assert check_send(capped, {}, log, "email", now=t0 + timedelta(days=3)) == Skip(
        "frequency_capped", "email: 3 per P7D reached"
    )
    assert check_send(capped, {}, log, "email", now=t0 + timedelta(days=7)) == Allow()


def test_the_send_log_keeps_only_what_a_cap_can_still_count() -> None:
    capped = policy(caps={"email": [{"max": 5, "per": "P1D"}]})
    t0 = utc(2026, 4, 1)
    log = record_send(capped, {"push": [t0]}, "email", at=t0)
    assert log == {"email": [t0]}  # push has no caps: nothing to remember
    assert record_send(capped, log, "email", at=t0 + timedelta(days=2)) == {
        "email": [t0 + timedelta(days=2)]
    }
    assert prune(SendPolicy(), log, now=t0) == {}
    assert merge_logs({"email": [t0]}, {"email": [t0], "sms": [t0]}) == {
        "email": [t0],
        "sms": [t0],
    }


def test_consent_is_checked_before_quiet_hours_and_quiet_hours_before_caps() -> None:
    strict = policy(caps={"email": [{"max": 0, "per": "P1D"}]}, quiet_hours=NIGHT)
    night = utc(2026, 6, 2, 2)
    opted_out = {**NY, "unsubscribed": True}
    assert check_send(strict, opted_out, {}, "email", now=night).kind == "skip"
    assert check_send(strict, NY, {}, "email", now=night).kind == "defer"
    assert check_send(strict, NY, {}, "email", now=utc(2026, 6, 2, 15)).kind == "skip"


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_send(SendPolicy(), {}, {}, "email", now=datetime(2026, 1, 1))


# --- properties -------------------------------------------------------------------------------

#: Every place the tz database knows (not the host's own zone, which is no customer's).
ZONES = sorted(
    z
    for z in available_timezones()
    if not z.startswith(("posix", "right")) and z not in ("localtime", "Factory")
)
minutes = st.integers(min_value=0, max_value=24 * 60 - 1)
moments = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2037, 12, 31), timezones=st.just(UTC)
)


@st.composite
def quiet_windows(draw: st.DrawFn) -> dict[str, str]:
    start = draw(minutes)
    end = draw(minutes.filter(lambda m: m != start))
    return {
        "start": f"{start // 60:02d}:{start % 60:02d}",
        "end": f"{end // 60:02d}:{end % 60:02d}",
    }


@PROPERTY
@given(window=quiet_windows(), zone=st.sampled_from(ZONES), now=moments)
def test_never_allows_inside_quiet_hours_and_defers_to_a_moment_outside_them(
    window: dict[str, str], zone: str, now: datetime
) -> None:
    quiet = policy(quiet_hours=window)
    assert quiet.quiet_hours is not None
    tz = ZoneInfo(zone)
    decision = check_send(quiet, {"timezone": zone}, {}, "email", now=now)
    if isinstance(decision, Allow):
        assert not is_quiet(quiet.quiet_hours, tz, now)
    else:
        assert isinstance(decision, Defer)
        assert is_quiet(quiet.quiet_hours, tz, now)
        assert now < decision.until
        assert not is_quiet(quiet.quiet_hours, tz, decision.until)
        # ... and no earlier minute was free: it is the end of the quiet spell.
        probe = decision.until - timedelta(minutes=1)
        while probe > now:
            assert is_quiet(quiet.quiet_hours, tz, probe), probe
            probe -= timedelta(minutes=1)
        # Deferring is a fixed point: the moment it ends, the send is allowed.
        again = check_send(quiet, {"timezone": zone}, {}, "email", now=decision.until)
        assert again == Allow()


caps = st.lists(
    st.builds(
        lambda m, h: {"max": m, "per": f"PT{h}H"},
        st.integers(min_value=0, max_value=4),
        st.integers(min_value=1, max_value=72),
    ),
    min_size=1,
    max_size=3,
    unique_by=lambda c: c["per"],
)
gaps = st.lists(st.integers(min_value=0, max_value=36 * 60), min_size=1, max_size=40)


@PROPERTY
@given(caps=caps, gaps=gaps)
def test_never_more_sends_than_a_cap_in_any_window(
    caps: list[dict[str, Any]], gaps: list[int]
) -> None:
    capped = policy(caps={"sms": caps})
    traits = {"sms_opt_in": True}
    log: dict[str, list[datetime]] = {}
    sent: list[datetime] = []
    now = utc(2026, 1, 1)
    for gap in gaps:
        now += timedelta(minutes=gap)
        if check_send(capped, traits, log, "sms", now=now) == Allow():
            log = record_send(capped, log, "sms", at=now)
            sent.append(now)
    for cap in capped.caps_for("sms"):
        for start in sent:  # the fullest window starts at a send
            assert sum(start <= t < start + cap.per for t in sent) <= cap.max


signals: st.SearchStrategy[Any] = st.sampled_from(
    [True, False, None, "yes", "no", "1", "0", 1, 0, "maybe", {}]
)
denials = st.sampled_from(
    [
        {"unsubscribed": True},
        {"unsubscribed": "true"},
        {"consent": False},
        {"consent": {"CH": False}},
        {"consent": {"CH": "no"}},
        {"CH_opt_in": False},
        {"CH_opt_in": "0"},
    ]
)


@PROPERTY
@given(
    channel=st.sampled_from(["email", "sms", "push", "webhook"]),
    denial=denials,
    noise=st.dictionaries(st.sampled_from(["CH_opt_in", "consent", "timezone"]), signals),
    modes=st.dictionaries(
        st.sampled_from(["email", "sms", "push", "webhook"]), st.sampled_from(["opt_in", "opt_out"])
    ),
    window=st.none() | quiet_windows(),
    now=moments,
)
def test_an_opt_out_always_skips(
    channel: str,
    denial: dict[str, Any],
    noise: dict[str, Any],
    modes: dict[str, str],
    window: dict[str, str] | None,
    now: datetime,
) -> None:
    def named(traits: dict[str, Any]) -> dict[str, Any]:
        out = {k.replace("CH", channel): v for k, v in traits.items()}
        if isinstance(out.get("consent"), dict):
            out["consent"] = {k.replace("CH", channel): v for k, v in out["consent"].items()}
        return out

    traits = {**named(noise), **named(denial)}
    strict = policy(consent=modes, quiet_hours=window)
    assert check_send(strict, traits, {}, channel, now=now) == Skip(
        "opted_out", f"the customer opted out of {channel}"
    )
