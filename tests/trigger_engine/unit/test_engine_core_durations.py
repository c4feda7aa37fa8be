from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from services.trigger_engine.core.durations import (
    Duration,
    DurationError,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT2S", timedelta(seconds=2)),
        ("PT1H", timedelta(hours=1)),
        ("PT90M", timedelta(minutes=90)),
        ("P7D", timedelta(days=7)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("P2W", timedelta(weeks=2)),
        ("PT0.5S", timedelta(milliseconds=500)),
        ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("pt1h", timedelta(hours=1)),
    ],
)
def test_parses_iso_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty duration"),
        ("1D", "must start with 'P'"),
        ("P", "has no amount"),
        ("PT", "has no amount"),
        ("P1DT", "'T' but no hours"),
        ("P1H", "hours and seconds go after 'T'"),
        ("P1M", "years and months have no fixed length"),
        ("P1Y", "years and months have no fixed length"),
        ("P-1D", "negative durations"),
        ("PT1X", "is not an ISO 8601 duration"),
    ],
)
def test_rejects_bad_durations_with_a_reason(text: str, fragment: str) -> None:
    with pytest.raises(DurationError, match=fragment):
        parse_duration(text)


def test_rejects_non_strings() -> None:
    with pytest.raises(DurationError, match="expected an ISO 8601 duration string"):
        parse_duration(3600)  # type: ignore[arg-type]


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5000)))
def test_format_round_trips(value: timedelta) -> None:
    assert parse_duration(format_duration(value)) == value


def test_zero_formats_as_pt0s() -> None:
    assert format_duration(timedelta(0)) == "PT0S"


class _Holder(BaseModel):
    wait: Duration


def test_duration_field_reads_and_writes_iso_strings() -> None:
    holder = _Holder.model_validate({"wait": "P1DT2H"})
    assert holder.wait == timedelta(days=1, hours=2)
    assert holder.model_dump(mode="json") == {"wait": "P1DT2H"}
    assert _Holder.model_validate(holder.model_dump(mode="json")) == holder
