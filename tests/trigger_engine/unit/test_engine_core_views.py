"""Reading a condition's value from the live state and event answers what resolving it on the
dumped JSON views answers, or defers to them (SLOW); never anything else."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import msgspec
from engine_core_support import T0
from engine_core_support import event as make_event
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from services.trigger_engine.core import views
from services.trigger_engine.core.conditions import MISSING, Condition, evaluate, resolve
from services.trigger_engine.core.context import StepContext
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.profile import Cart, CartItem, Profile
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState
from shared.envelope import Event

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = ["email", "tier", "a", "b", "0", "1"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([0.0, 1.0, 2.5, -1.5, math.inf, math.nan]),
    st.sampled_from(["", "x", "gold", "20.00"]),
    st.just(T0),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
        st.dictionaries(st.sampled_from([0, 1]), inner, max_size=2),  # keys the view strings
        st.tuples(inner, inner),
    ),
    max_leaves=6,
)
bags = st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=4)


def keys_ahead(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) or value is None


PROFILE_FIELDS = [
    "customer_key",
    "user_id",
    "anonymous_ids",
    "traits",
    "traits",
    "traits",
    "orders",
    "revenue",
    "aov",
    "cart",
    "cart_adds",
    "stage",
    "stage_entered_at",
    "known",
    "nps",
    "order_log",
    "last_seen_at",
    "nonexistent",
]
EVENT_FIELDS = [
    "event",
    "event_id",
    "call",
    "user_id",
    "properties",
    "properties",
    "properties",
    "traits",
    "context",
    "timestamp",
    "version",
    "type",
    "nonexistent",
]


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types throughout (conditions tell 1, 1.0 and True apart)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@PROPERTY
@given(
    data=st.data(),
    root=st.sampled_from(["profile", "event"]),
    traits=bags,
    properties=bags,
    context=bags,
    revenue=st.sampled_from([0.0, 12.5, 0, math.inf]),
    stage=st.sampled_from([None, "visitor", "loyal"]),
    with_event=st.sampled_from([True, True, True, False]),
)
def test_live_reads_agree_with_the_dumped_views(
    data: st.DataObject,
    root: str,
    traits: dict[str, Any],
    properties: dict[str, Any],
    context: dict[str, Any],
    revenue: float,
    stage: str | None,
    with_event: bool,
) -> None:
    profile = Profile(
        customer_key="c",
        user_id="c",
        anonymous_ids=["a1"],
        traits=traits,
        orders=1,
        revenue=revenue,
        cart=Cart(products=[CartItem(product_id="p", price=2.5, quantity=2, added_at=T0)]),
        last_seen_at=T0,
    )
    state = CustomerState(
        customer_key="c",
        profile=profile,
        stage=stage,
        stage_entered_at=T0 + timedelta(hours=1) if stage else None,
    )
    event: Event | None = None
    if with_event:
        base = make_event("Product Viewed", T0, customer="c", properties=properties)
        event = msgspec.structs.replace(base, context=context, traits=traits)
    ctx = StepContext(state=state, rules=RuleSet(), lifecycle=default_lifecycle(), now=T0)
    views_data: dict[str, Any] = {"profile": ctx.profile_view()}
    if event is not None:
        views_data["event"] = msgspec.to_builtins(event)
    # Walk mostly along keys that exist in the live objects, sometimes off them.
    name = data.draw(st.sampled_from(PROFILE_FIELDS if root == "profile" else EVENT_FIELDS))
    parts = [root, name]
    live_value: Any = getattr(state.profile if root == "profile" else event, name, None)
    for _ in range(
        data.draw(st.integers(min_value=0, max_value=3)) if keys_ahead(live_value) else 0
    ):
        keys = [str(k) for k in live_value] if isinstance(live_value, dict | list) else []
        if isinstance(live_value, list | tuple):
            keys = [str(i) for i in range(len(live_value))]
        part = data.draw(st.sampled_from([*keys * 6, "x", "value", "0"]))
        parts.append(part)
        if isinstance(live_value, dict):
            number = int(part) if part.isdigit() else None
            live_value = live_value.get(part, live_value.get(number))
        elif isinstance(live_value, list | tuple) and part.isdigit():
            live_value = live_value[int(part)] if int(part) < len(live_value) else None
        else:
            live_value = None
    path = ".".join(parts)
    data_views = views_data
    condition = Condition(path=path, op="exists")

    live = views.read(condition, state, event)
    hypothesis_event("slow" if live is views.SLOW else "missing" if live is MISSING else "live")
    if live is not views.SLOW:
        expected = resolve(path, data_views)
        assert (live is MISSING) == (expected is MISSING)
        assert live is MISSING or same(live, expected)

    for op, value in [("eq", 1), ("gte", 2), ("in", ["gold", 1]), ("contains", "x")]:
        check = Condition(path=path, op=op, value=value)  # type: ignore[arg-type]
        assert ctx.matches([check], event) == evaluate(check, data_views)


def _state(traits: dict[str, Any]) -> CustomerState:
    profile = Profile(customer_key="c", traits=traits)
    return CustomerState(customer_key="c", profile=profile, stage="visitor", stage_entered_at=T0)


def _view(state: CustomerState) -> dict[str, Any]:
    ctx = StepContext(state=state, rules=RuleSet(), lifecycle=default_lifecycle(), now=T0)
    return {"profile": ctx.profile_view()}


def test_values_the_dump_would_change_are_left_to_the_dump() -> None:
    state = _state({"inf": math.inf, "nan": math.nan, "ints": {1: "a"}, "pair": (1, 2), "when": T0})
    for path in ("inf", "nan", "ints", "pair", "when"):
        condition = Condition(path=f"profile.traits.{path}", op="exists")
        assert views.read(condition, state, None) is views.SLOW
    missing_in_int_keyed = Condition(path="profile.traits.ints.1", op="exists")
    assert views.read(missing_in_int_keyed, state, None) is views.SLOW
    assert resolve("profile.traits.ints.1", _view(state)) == "a"


def test_plain_values_are_read_live_exactly_as_the_view_has_them() -> None:
    state = _state({"tier": "gold", "n": 2, "f": 2.5, "list": [1, {"k": True}]})
    view = _view(state)
    for path in ("traits.tier", "traits.n", "traits.f", "traits.list.1.k", "stage", "known"):
        condition = Condition(path=f"profile.{path}", op="exists")
        live = views.read(condition, state, None)
        assert same(live, resolve(f"profile.{path}", view)), path
    entered = views.read(Condition(path="profile.stage_entered_at", op="exists"), state, None)
    assert entered == resolve("profile.stage_entered_at", view) == T0.isoformat()
    absent = views.read(Condition(path="profile.traits.nope", op="exists"), state, None)
    assert absent is MISSING
