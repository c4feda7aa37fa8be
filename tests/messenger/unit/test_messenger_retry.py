"""Retry maths: classification, schedule, jitter, Retry-After, and the decision values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.messenger.delivery.retry import (
    DEFAULT_SCHEDULE,
    Dead,
    Delivered,
    DisableDestination,
    Failed,
    HttpResponse,
    Outcome,
    Retry,
    RetryPolicy,
    TransportError,
    TransportErrorKind,
    clamp_retry_after,
    classify,
    decide,
    next_delay,
    parse_retry_after,
    seeded_rand,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
# Multiplying a timedelta by a float rounds to the microsecond.
ROUNDING = timedelta(microseconds=2)

durations = st.integers(min_value=0, max_value=86_400 * 2).map(lambda s: timedelta(seconds=s))
rands = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@st.composite
def policies(draw: st.DrawFn) -> RetryPolicy:
    schedule = sorted(draw(st.lists(durations, min_size=1, max_size=12)))
    low = draw(durations)
    high = low + draw(durations)
    return RetryPolicy(
        schedule=tuple(schedule),
        jitter=draw(st.floats(min_value=0.0, max_value=0.99)),
        retry_after_min=low,
        retry_after_max=high,
    )


# --- the policy as data ---------------------------------------------------------------------


def test_default_policy_is_svix_like() -> None:
    policy = RetryPolicy()
    assert policy.schedule == DEFAULT_SCHEDULE
    assert policy.schedule[0] == timedelta(0)
    assert [s.total_seconds() for s in policy.schedule[1:]] == [
        5,
        300,
        1800,
        7200,
        18000,
        36000,
        36000,
    ]
    assert policy.max_attempts == 8
    assert policy.timeout == timedelta(seconds=15)


def test_policy_loads_from_plain_config() -> None:
    policy = RetryPolicy.model_validate(
        {"schedule": [0, 10, "PT1M"], "jitter": 0.1, "retry_after_max": 600}
    )
    assert policy.schedule == (timedelta(0), timedelta(seconds=10), timedelta(minutes=1))
    assert policy.retry_after_max == timedelta(minutes=10)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"schedule": []}, "at least 1"),
        ({"schedule": [0, 60, 30]}, "non-decreasing"),
        ({"schedule": [-1, 5]}, "negative"),
        ({"jitter": 1.0}, "less than 1"),
        ({"jitter": -0.1}, "greater than or equal"),
        ({"retry_after_min": 10, "retry_after_max": 5}, "retry_after_max"),
        ({"timeout": 0}, "timeout"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_policy_rejects_nonsense(config: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RetryPolicy.model_validate(config)


# --- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (201, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (299, Outcome.DELIVERED),
        (429, Outcome.RETRYABLE),
        (500, Outcome.RETRYABLE),
        (502, Outcome.RETRYABLE),
        (503, Outcome.RETRYABLE),
        (599, Outcome.RETRYABLE),
        (410, Outcome.GONE),
        (400, Outcome.FAILED),
        (401, Outcome.FAILED),
        (404, Outcome.FAILED),
        (408, Outcome.FAILED),
        (413, Outcome.FAILED),
        (301, Outcome.FAILED),
        (302, Outcome.FAILED),
        (101, Outcome.FAILED),
        (600, Outcome.FAILED),
    ],
)
def test_status_codes_are_classified_per_contract(status: int, outcome: Outcome) -> None:
    assert classify(HttpResponse(status))[0] is outcome


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        (TransportErrorKind.TIMEOUT, Outcome.RETRYABLE),
        (TransportErrorKind.CONNECTION, Outcome.RETRYABLE),
        (TransportErrorKind.OTHER, Outcome.RETRYABLE),
        (TransportErrorKind.UNSAFE_DESTINATION, Outcome.FAILED),
    ],
)
def test_transport_errors_are_classified(kind: TransportErrorKind, outcome: Outcome) -> None:
    found, reason = classify(TransportError(kind, "details here"))
    assert found is outcome
    assert "details here" in reason


# --- decisions ------------------------------------------------------------------------------


def test_2xx_is_delivered() -> None:
    assert isinstance(decide(RetryPolicy(), 1, HttpResponse(204), now=NOW, rand=0.5), Delivered)


def test_410_disables_the_destination() -> None:
    decision = decide(RetryPolicy(), 3, HttpResponse(410), now=NOW, rand=0.5)
    assert isinstance(decision, DisableDestination)
    assert "410" in decision.reason


def test_other_4xx_fails_at_once_even_on_the_first_attempt() -> None:
    decision = decide(RetryPolicy(), 1, HttpResponse(422), now=NOW, rand=0.5)
    assert decision == Failed("HTTP 422: the receiver rejected the message")


def test_retry_waits_the_next_scheduled_step_and_sets_next_attempt_at() -> None:
    decision = decide(RetryPolicy(), 1, HttpResponse(503), now=NOW, rand=0.5)
    assert isinstance(decision, Retry)
    assert decision.after == timedelta(seconds=5)
    assert decision.next_attempt_at == NOW + timedelta(seconds=5)
    assert "503" in decision.reason


def test_timeout_is_retried() -> None:
    result = TransportError(TransportErrorKind.TIMEOUT)
    decision = decide(RetryPolicy(), 2, result, now=NOW, rand=0.5)
    assert decision == Retry(timedelta(minutes=5), NOW + timedelta(minutes=5), "timeout")


def test_last_attempt_failing_is_dead_with_the_last_reason() -> None:
    policy = RetryPolicy()
    decision = decide(policy, policy.max_attempts, HttpResponse(500), now=NOW, rand=0.5)
    assert isinstance(decision, Dead)
    assert "8 attempts" in decision.reason
    assert "HTTP 500" in decision.reason


def test_retry_after_seconds_is_honoured() -> None:
    decision = decide(RetryPolicy(), 1, HttpResponse(429, "120"), now=NOW, rand=0.5)
    assert isinstance(decision, Retry)
    assert decision.after == timedelta(seconds=120)


def test_retry_after_http_date_is_honoured() -> None:
    header = "Sun, 22 Nov 2026 12:10:00 GMT"
    decision = decide(RetryPolicy(), 1, HttpResponse(503, header), now=NOW, rand=0.5)
    assert isinstance(decision, Retry)
    assert decision.next_attempt_at == datetime(2026, 11, 22, 12, 10, tzinfo=UTC)


def test_retry_after_is_clamped_to_the_policy_maximum() -> None:
    decision = decide(RetryPolicy(), 1, HttpResponse(429, "999999"), now=NOW, rand=0.5)
    assert isinstance(decision, Retry)
    assert decision.after == timedelta(hours=1)


def test_short_retry_after_does_not_speed_up_the_schedule() -> None:
    decision = decide(RetryPolicy(), 3, HttpResponse(429, "1"), now=NOW, rand=0.5)
    assert isinstance(decision, Retry)
    assert decision.after == timedelta(minutes=30)


def test_same_inputs_same_decision() -> None:
    rand = seeded_rand("act_1", 2)
    first = decide(RetryPolicy(), 2, HttpResponse(500), now=NOW, rand=rand)
    assert decide(RetryPolicy(), 2, HttpResponse(500), now=NOW, rand=rand) == first


@pytest.mark.parametrize("rand", [-0.1, 1.0, 1.5])
def test_rand_outside_unit_interval_is_a_programming_error(rand: float) -> None:
    with pytest.raises(ValueError, match="rand"):
        decide(RetryPolicy(), 1, HttpResponse(500), now=NOW, rand=rand)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        decide(RetryPolicy(), 1, HttpResponse(500), now=datetime(2026, 1, 1), rand=0.5)


def test_attempt_numbers_are_one_based() -> None:
    with pytest.raises(ValueError, match="1-based"):
        next_delay(RetryPolicy(), 0, Outcome.RETRYABLE, None, rand=0.5)


# --- Retry-After parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", timedelta(0)),
        ("30", timedelta(seconds=30)),
        (" 30 ", timedelta(seconds=30)),
        ("Sun, 22 Nov 2026 12:01:00 GMT", timedelta(minutes=1)),
        ("Sun, 22 Nov 2026 11:00:00 GMT", timedelta(0)),
        ("9" * 40, timedelta(days=365)),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("9" * 100, None),
        ("٣", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: timedelta | None) -> None:
    assert parse_retry_after(header, now=NOW) == expected


# --- properties -----------------------------------------------------------------------------


@given(policies(), st.integers(min_value=1, max_value=20), rands)
def test_delays_are_never_negative_and_stay_within_the_jitter_band(
    policy: RetryPolicy, attempt: int, rand: float
) -> None:
    delay = next_delay(policy, attempt, Outcome.RETRYABLE, None, rand=rand)
    if attempt >= policy.max_attempts:
        assert delay is None
        return
    assert delay is not None
    assert delay >= timedelta(0)
    step = policy.schedule[attempt]
    assert step * (1 - policy.jitter) - ROUNDING <= delay <= step * (1 + policy.jitter) + ROUNDING


@given(policies(), st.integers(min_value=1, max_value=2**20 - 1))
def test_expected_delays_follow_the_non_decreasing_schedule(policy: RetryPolicy, k: int) -> None:
    # Jitter is symmetric: rand and 1 - rand average to the scheduled step, so the expected
    # delay of each retry is its schedule entry, and the schedule never decreases.
    rand, mirror = k / 2**20, 1.0 - k / 2**20  # both exact in binary floating point
    expected = []
    for attempt in range(1, policy.max_attempts):
        low = next_delay(policy, attempt, Outcome.RETRYABLE, None, rand=rand)
        high = next_delay(policy, attempt, Outcome.RETRYABLE, None, rand=mirror)
        assert low is not None and high is not None
        mean = (low + high) / 2
        assert abs(mean - policy.schedule[attempt]) <= ROUNDING
        expected.append(policy.schedule[attempt])
    assert expected == sorted(expected)


@given(policies(), st.integers(min_value=1, max_value=11), rands, durations)
def test_retry_after_is_clamped_and_acts_as_a_floor(
    policy: RetryPolicy, attempt: int, rand: float, retry_after: timedelta
) -> None:
    delay = next_delay(policy, attempt, Outcome.RETRYABLE, retry_after, rand=rand)
    plain = next_delay(policy, attempt, Outcome.RETRYABLE, None, rand=rand)
    if attempt >= policy.max_attempts:
        assert delay is None
        return
    assert delay is not None and plain is not None
    clamped = clamp_retry_after(policy, retry_after)
    assert policy.retry_after_min <= clamped <= policy.retry_after_max
    assert delay == max(plain, clamped)


@given(policies(), st.sampled_from([429, 500, 503]), st.data())
def test_a_delivery_gets_exactly_len_schedule_attempts(
    policy: RetryPolicy, status: int, data: st.DataObject
) -> None:
    attempts, now = 1, NOW
    while True:
        decision = decide(policy, attempts, HttpResponse(status), now=now, rand=data.draw(rands))
        if isinstance(decision, Dead):
            break
        assert isinstance(decision, Retry)
        assert decision.next_attempt_at >= now
        now = decision.next_attempt_at
        attempts += 1
    assert attempts == policy.max_attempts == len(policy.schedule)


@given(st.lists(st.text(), max_size=3))
def test_seeded_rand_is_stable_and_in_unit_interval(parts: list[str]) -> None:
    value = seeded_rand(*parts)
    assert 0.0 <= value < 1.0
    assert seeded_rand(*parts) == value


def test_seeded_rand_spreads_different_seeds() -> None:
    values = {seeded_rand("act", i) for i in range(200)}
    assert len(values) == 200
    assert min(values) < 0.1 and max(values) > 0.9
