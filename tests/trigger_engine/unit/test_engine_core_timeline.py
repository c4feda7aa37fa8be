"""The compiled lifecycle (one remembered timeline per distinct input) answers exactly what the
model's definition says: first matching stage, flip instants, next change by time alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from engine_core_support import T0
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.trigger_engine.core.lifecycle import (
    ElapsedCriterion,
    LifecycleModel,
    boundaries,
    default_lifecycle,
    next_stage,
    next_stage_change_at,
)
from services.trigger_engine.core.profile import Profile

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
METRICS = ["orders", "revenue", "aov", "cart_adds", "checkouts", "cart_activity", "known"]
ANCHORS = ["last_order_at", "first_order_at", "last_seen_at", "first_seen_at"]


def reference_stage(model: LifecycleModel, profile: Profile, now: datetime) -> str:
    return next(stage.name for stage in model.stages if stage.matches(profile, now))


def reference_boundaries(model: LifecycleModel, profile: Profile) -> list[datetime]:
    flips = {
        flip
        for stage in model.stages
        for criterion in stage.when
        if isinstance(criterion, ElapsedCriterion)
        and (flip := criterion.boundary(profile)) is not None
    }
    return sorted(flips)


def reference_next_change(
    model: LifecycleModel, profile: Profile, now: datetime
) -> datetime | None:
    current = reference_stage(model, profile, now)
    for instant in reference_boundaries(model, profile):
        if instant > now and reference_stage(model, profile, instant) != current:
            return instant
    return None


hours = st.integers(min_value=0, max_value=48)
criteria = st.one_of(
    st.builds(
        lambda metric, op, value: {"metric": metric, "op": op, "value": value},
        st.sampled_from(METRICS),
        st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]),
        st.one_of(st.integers(min_value=0, max_value=4), st.booleans()),
    ),
    st.builds(
        lambda since, kind, h: {"since": since, kind: f"PT{h}H"},
        st.sampled_from(ANCHORS),
        st.sampled_from(["at_least", "less_than"]),
        hours,
    ),
)
models = st.lists(st.lists(criteria, min_size=1, max_size=3), min_size=0, max_size=5).map(
    lambda stages: LifecycleModel.model_validate(
        {
            "stages": [{"name": f"s{i}", "when": when} for i, when in enumerate(stages)]
            + [{"name": "rest"}]
        }
    )
)
instants = st.one_of(
    st.none(), st.integers(min_value=-96, max_value=96).map(lambda h: T0 + timedelta(hours=h))
)
profiles = st.builds(
    lambda orders, revenue, adds, checkouts, email, anchors: Profile(
        customer_key="c",
        orders=orders,
        revenue=revenue,
        aov=round(revenue / orders, 2) if orders else 0.0,
        cart_adds=adds,
        checkouts=checkouts,
        traits={"email": email} if email else {},
        **dict(zip(ANCHORS, anchors, strict=True)),
    ),
    st.integers(min_value=0, max_value=5),
    st.sampled_from([0.0, 10.0, 99.5]),
    st.integers(min_value=0, max_value=3),
    st.integers(min_value=0, max_value=2),
    st.sampled_from([None, "x@example.com"]),
    st.tuples(instants, instants, instants, instants),
)


@PROPERTY
@given(models, profiles, st.integers(min_value=-100, max_value=200))
def test_compiled_lifecycle_answers_as_the_definition(
    model: LifecycleModel, profile: Profile, offset_hours: int
) -> None:
    now = T0 + timedelta(hours=offset_hours)
    flips = reference_boundaries(model, profile)
    assert boundaries(model, profile) == flips
    # every boundary exactly, a moment either side of it, and an arbitrary instant
    moments = [now] + [b + d for b in flips for d in (-timedelta(microseconds=1), timedelta(0))]
    for moment in moments:
        assert next_stage(model, profile, now=moment) == reference_stage(model, profile, moment)
        expected = reference_next_change(model, profile, moment)
        assert next_stage_change_at(model, profile, now=moment) == expected


def test_equal_instants_in_other_zones_keep_their_own_offset() -> None:
    model = default_lifecycle()
    plus_two = timezone(timedelta(hours=2))
    fields: dict[str, Any] = {"customer_key": "c", "orders": 1, "revenue": 1.0, "aov": 1.0}
    in_utc = Profile(**fields, last_order_at=T0.astimezone(UTC))
    in_plus_two = Profile(**fields, last_order_at=T0.astimezone(plus_two))
    first = next_stage_change_at(model, in_utc, now=T0)
    second = next_stage_change_at(model, in_plus_two, now=T0)
    assert first == second
    assert first is not None and second is not None
    assert (first.utcoffset(), second.utcoffset()) == (timedelta(0), timedelta(hours=2))
