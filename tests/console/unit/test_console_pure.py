"""The console's pure pieces: chart geometry, the forms and where errors go, version
diffs, sessions and formats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.console import charts, formats, forms
from services.console.diff import rule_diff
from services.console.sessions import SessionStore

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (12, 20), (240, 250), (0.3, 0.5)]
)
def test_nice_ceiling(value: float, ceiling: float) -> None:
    assert charts.nice_ceiling(value) == pytest.approx(ceiling)


def test_columns_scale_to_the_ceiling_and_keep_their_order() -> None:
    chart = charts.columns([("a", 5), ("b", 10), ("c", 0)], width=300, height=100)
    assert chart.top == 10
    assert [b.label for b in chart.bars] == ["a", "b", "c"]
    assert [b.height for b in chart.bars] == [50, 100, 0]
    assert chart.bars[1].y == 0 and chart.bars[2].y == 100
    assert all(b.x + b.width <= 300 for b in chart.bars)


def test_rows_are_as_long_as_their_share_of_the_ceiling() -> None:
    chart = charts.rows([("visitor", 40), ("loyal", 10)], width=200)
    assert [b.width for b in chart.bars] == [200 * 40 / 50, 200 * 10 / 50]
    assert chart.bars[1].y > chart.bars[0].y


def test_sparkline_leaves_a_gap_for_a_missing_value() -> None:
    line = charts.sparkline([("p1", 1.0), ("p2", None), ("p3", 3.0), ("p4", 2.0)])
    assert line.path.count("M") == 2 and line.path.count("L") == 1
    assert [p[2] for p in line.points] == ["p1", "p3", "p4"]
    assert min(p[1] for p in line.points) == 4  # the highest value at the top pad


def test_a_rule_survives_the_form_both_ways() -> None:
    rule = {
        "key": "cart",
        "name": "Cart",
        "enabled": True,
        "trigger": {
            "type": "event",
            "event": "Product Added",
            "where": [{"path": "event.properties.price", "op": "gte", "value": 20}],
        },
        "audience": [{"path": "profile.stage", "op": "in", "value": ["visitor"]}],
        "steps": [{"wait": "PT1H"}, {"send": {"channel": "email", "template": "t"}}],
        "exit_when": [{"event": "Order Completed"}],
        "reentry": "P7D",
        "holdout_percent": 10,
        "goal": {"event": "Order Completed", "within": "P7D", "where": []},
    }
    body, errors = forms.rule_from_form(forms.form_from_rule(rule))
    assert errors == {}
    assert body == rule


def test_a_stage_changed_trigger_takes_comma_separated_stages() -> None:
    values = forms.form_from_rule(forms.NEW_RULE) | {
        "trigger_type": "stage_changed",
        "trigger_from": "repeat, loyal",
        "trigger_to": "at_risk",
    }
    body, _ = forms.rule_from_form(values)
    assert body["trigger"] == {
        "type": "stage_changed",
        "from": ["repeat", "loyal"],
        "to": ["at_risk"],
    }


def test_a_box_that_is_not_json_is_refused_on_its_field() -> None:
    values = forms.form_from_rule(forms.NEW_RULE) | {"steps": '[{"wait": }', "audience": "{}"}
    _, errors = forms.rule_from_form(values)
    assert errors["steps"][0].startswith("not valid JSON")
    assert errors["audience"] == ["must be a list [...]"]


def test_api_errors_go_to_their_fields_and_keep_where_inside_a_box() -> None:
    placed = forms.place_rule_errors(
        {
            "trigger.event": ["is required"],
            "trigger.stage": ["unknown stage"],
            "trigger": ["unknown trigger type"],
            "steps.1.wait": ["bad duration"],
            "goal.within": ["must be longer than zero"],
            "reentry": ["bad duration"],
            "rule": ["something about all of it"],
        }
    )
    assert placed == {
        "trigger_event": ["is required"],
        "trigger_stage": ["unknown stage"],
        "trigger_type": ["unknown trigger type"],
        "steps": ["steps.1.wait: bad duration"],
        "goal_within": ["must be longer than zero"],
        "reentry": ["bad duration"],
        "": ["something about all of it"],
    }


def test_policy_form_both_ways_and_its_errors() -> None:
    policy = {
        "caps": {"email": [{"max": 3, "per": "P1D"}]},
        "quiet_hours": {"start": "21:00:00", "end": "08:00:00", "channels": ["sms"]},
        "default_timezone": "Europe/Berlin",
        "consent": {"email": "opt_out", "sms": "opt_in", "push": "opt_out", "webhook": "opt_out"},
    }
    body, errors = forms.policy_from_form(forms.form_from_policy(policy))
    assert errors == {}
    assert body["quiet_hours"] == {"start": "21:00", "end": "08:00", "channels": ["sms"]}
    assert body["caps"] == policy["caps"] and body["consent"] == policy["consent"]
    placed = forms.place_policy_errors({"quiet_hours.end": ["bad"], "caps.email.0.per": ["x"]})
    assert placed == {"quiet_end": ["bad"], "caps": ["caps.email.0.per: x"]}
    off, _ = forms.policy_from_form({"default_timezone": "UTC"})
    assert off["quiet_hours"] is None


def test_diff_shows_what_changed_and_leaves_the_version_out() -> None:
    old = {"key": "r", "version": 1, "name": "A", "steps": [{"wait": "PT1H"}]}
    new = {"key": "r", "version": 2, "name": "B", "steps": [{"wait": "PT1H"}]}
    lines = rule_diff(old, new)
    assert [(line.kind, line.text.strip()) for line in lines if line.kind != "same"] == [
        ("removed", '"name": "A",'),
        ("added", '"name": "B",'),
    ]
    assert all("version" not in line.text for line in lines)


def test_sessions_expire_when_idle_and_end_on_sign_out() -> None:
    store = SessionStore(idle=timedelta(hours=1), max_sessions=2)
    first = store.create("tok", now=T0)
    assert first.csrf != first.id and len(first.id) >= 40
    assert store.get(first.id, now=T0 + timedelta(minutes=59)) is first
    assert store.get(first.id, now=T0 + timedelta(minutes=118)) is first  # seen renews it
    assert store.get(first.id, now=T0 + timedelta(hours=4)) is None
    second = store.create("tok", now=T0)
    store.end(second.id)
    assert store.get(second.id, now=T0) is None and store.get(None, now=T0) is None


def test_sessions_beyond_the_limit_drop_the_least_recently_seen() -> None:
    store = SessionStore(idle=timedelta(hours=1), max_sessions=2)
    a = store.create("t", now=T0)
    b = store.create("t", now=T0 + timedelta(seconds=1))
    store.get(a.id, now=T0 + timedelta(seconds=2))
    c = store.create("t", now=T0 + timedelta(seconds=3))
    assert len(store) == 2
    assert store.get(b.id, now=T0 + timedelta(seconds=4)) is None
    assert store.get(a.id, now=T0 + timedelta(seconds=4)) is a and store.get(c.id, now=T0) is c


def test_formats() -> None:
    assert formats.when("2026-11-22T12:00:00Z") == "2026-11-22 12:00 UTC"
    assert formats.when(None) == "—"
    assert formats.ago(T0 - timedelta(minutes=5), now=T0) == "5 min ago"
    assert formats.ago(T0 + timedelta(hours=3), now=T0) == "in 3 h"
    assert formats.number(1234) == "1,234" and formats.number(2.5) == "2.50"
    assert formats.percent(0.125) == "12.5 %" and formats.percent(None) == "—"
