"""Lifecycle stages: an ordered list of stage definitions, first match wins.

A stage matches when all its criteria hold. Criteria are either *metric* comparisons on the
profile (``orders >= 5``) or *elapsed-time* checks on a profile timestamp (``last_order_at``
at least ``P90D`` ago). Only elapsed-time criteria depend on the clock, and each flips
exactly once at ``anchor + duration``; that is what makes :func:`next_stage_change_at`
exact, so the I/O layer can set one durable timer instead of polling.
"""

from __future__ import annotations

import hashlib
import operator
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from .durations import Duration
from .profile import COMMERCE, IDENTITY, SEEN, TRAITS, Profile

Metric = Literal[
    "orders",
    "revenue",
    "aov",
    "cart_adds",
    "checkouts",
    "cart_activity",
    "open_cart_items",
    "nps_responses",
    "known",
    "identified",
]
Anchor = Literal["last_order_at", "first_order_at", "last_seen_at", "first_seen_at"]

METRICS: Final[dict[str, Callable[[Profile], float | bool]]] = {
    "orders": lambda p: p.orders,
    "revenue": lambda p: p.revenue,
    "aov": lambda p: p.aov,
    "cart_adds": lambda p: p.cart_adds,
    "checkouts": lambda p: p.checkouts,
    "cart_activity": lambda p: p.cart_adds + p.checkouts,
    "open_cart_items": lambda p: sum(item.quantity for item in p.cart.products),
    "nps_responses": lambda p: len(p.nps),
    "known": lambda p: p.known,
    "identified": lambda p: p.user_id is not None,
}

#: What part of the profile each metric and anchor reads (see ``profile.SEEN`` etc.).
_READS: Final[dict[str, int]] = {
    **dict.fromkeys(
        (
            "orders",
            "revenue",
            "aov",
            "cart_adds",
            "checkouts",
            "cart_activity",
            "open_cart_items",
            "nps_responses",
            "last_order_at",
            "first_order_at",
        ),
        COMMERCE,
    ),
    "known": TRAITS,
    "identified": IDENTITY,
    "last_seen_at": SEEN,
    "first_seen_at": SEEN,
}

_OPS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}

#: Stages whose customers count as reactivated when they buy again, if a model has them.
DORMANT_STAGES: Final = ("lapsed", "at_risk")

DEFAULT_STAGE_NAMES: Final = (
    "lapsed",
    "at_risk",
    "loyal",
    "repeat",
    "first_time",
    "engaged",
    "prospect",
    "visitor",
)


class MetricCriterion(BaseModel):
    """``{"metric": "orders", "op": "gte", "value": 5}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: Metric
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte"]
    value: bool | int | float

    def holds(self, profile: Profile) -> bool:
        return bool(_OPS[self.op](METRICS[self.metric](profile), self.value))


class ElapsedCriterion(BaseModel):
    """``{"since": "last_order_at", "at_least": "P90D"}`` or ``..., "less_than": "P30D"``.

    False while the anchor timestamp is unset (a customer who never ordered has no
    "days since last order").
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: Anchor
    at_least: Duration | None = None
    less_than: Duration | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ElapsedCriterion:
        if (self.at_least is None) == (self.less_than is None):
            raise ValueError("give exactly one of 'at_least' or 'less_than'")
        return self

    def boundary(self, profile: Profile) -> datetime | None:
        """The instant this criterion flips, or None without an anchor."""
        anchor: datetime | None = getattr(profile, self.since)
        if anchor is None:
            return None
        return anchor + self.window

    @property
    def window(self) -> timedelta:
        """How long after the anchor this criterion flips."""
        return self.at_least or self.less_than or timedelta(0)

    def holds(self, profile: Profile, now: datetime) -> bool:
        flip = self.boundary(profile)
        if flip is None:
            return False
        return now >= flip if self.at_least is not None else now < flip


def _criterion_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return "metric" if "metric" in value else "since" if "since" in value else None
    return "metric" if isinstance(value, MetricCriterion) else "since"


Criterion = Annotated[
    Annotated[MetricCriterion, Tag("metric")] | Annotated[ElapsedCriterion, Tag("since")],
    Discriminator(
        _criterion_tag,
        custom_error_type="criterion",
        custom_error_message="a criterion needs either 'metric' or 'since'",
    ),
]


class StageDef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    description: str = ""
    when: list[Criterion] = Field(default_factory=list)

    def matches(self, profile: Profile, now: datetime) -> bool:
        return all(
            c.holds(profile, now) if isinstance(c, ElapsedCriterion) else c.holds(profile)
            for c in self.when
        )


class LifecycleModel(BaseModel):
    """Ordered stage definitions (``GET/PUT /v1/lifecycle``); first match wins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: list[StageDef] = Field(min_length=1)
    reactivation_from: list[str] = Field(
        default_factory=list,
        description="a purchase that moves a customer out of these stages is a reactivation "
        "(default: lapsed and at_risk, where the model has them)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_reactivation(cls, data: Any) -> Any:
        if isinstance(data, dict) and "reactivation_from" not in data:
            stages = data.get("stages")
            names = (
                {s.get("name") for s in stages if isinstance(s, dict)}
                if isinstance(stages, list)
                else set()
            )
            data = {**data, "reactivation_from": [n for n in DORMANT_STAGES if n in names]}
        return data

    @model_validator(mode="after")
    def _check(self) -> LifecycleModel:
        names = [stage.name for stage in self.stages]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate stage names: {', '.join(duplicates)}")
        if self.stages[-1].when:
            raise ValueError(
                f"the last stage ({self.stages[-1].name!r}) must have no criteria, "
                "so that every customer has a stage"
            )
        unknown = [n for n in self.reactivation_from if n not in names]
        if unknown:
            raise ValueError(f"reactivation_from names unknown stages: {', '.join(unknown)}")
        return self

    def stage_names(self) -> list[str]:
        return [stage.name for stage in self.stages]

    @cached_property
    def compiled(self) -> CompiledLifecycle:
        """The model as plain predicates, built on first use (the model is immutable)."""
        return CompiledLifecycle.of(self)


@dataclass(frozen=True, slots=True)
class _CompiledStage:
    name: str
    #: (index into the metric values, comparison, value)
    metrics: tuple[tuple[int, Callable[[Any, Any], Any], Any], ...]
    #: (index into the anchors, window, True for ``at_least`` / False for ``less_than``)
    elapsed: tuple[tuple[int, timedelta, bool], ...]


@dataclass(frozen=True, slots=True)
class Timeline:
    """A profile's stages over time: ``stages[i]`` holds from ``instants[i - 1]`` (inclusive)
    to ``instants[i]`` (exclusive); ``stages[0]`` before the first instant.

    Elapsed criteria flip only at the instants, so this is exact for every ``now``.
    """

    instants: tuple[datetime, ...]
    stages: tuple[str, ...]

    def stage_at(self, now: datetime) -> str:
        return self.stages[bisect_right(self.instants, now)]

    def next_change_at(self, now: datetime) -> datetime | None:
        index = bisect_right(self.instants, now)
        current = self.stages[index]
        for later in range(index + 1, len(self.stages)):
            if self.stages[later] != current:
                return self.instants[later - 1]
        return None


#: Timelines remembered per compiled model (they depend only on the values the model reads).
_TIMELINES_KEPT: Final = 65_536


@dataclass(frozen=True, slots=True)
class CompiledLifecycle:
    """The model as plain data, evaluated per profile once per change of what it reads.

    A stage depends on the profile only through the metrics and anchor timestamps its
    model names, so the whole :class:`Timeline` is computed once per distinct tuple of
    those values (remembered, bounded) and every later question is a lookup: an input that
    does not change them (a page view, for the default model) evaluates no criterion.
    """

    metrics: tuple[Callable[[Profile], Any], ...]
    anchors: tuple[str, ...]
    stages: tuple[_CompiledStage, ...]
    #: every distinct (anchor index, window) of an elapsed criterion
    flips: tuple[tuple[int, timedelta], ...]
    #: the parts of the profile the model reads (``profile.SEEN`` | ...): an event that
    #: changed none of them leaves the timeline as it was
    reads: int
    #: a fingerprint of the model: a state evaluated under it says so (``stage_model``)
    tag: int
    _timelines: dict[tuple[Any, ...], Timeline] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, model: LifecycleModel) -> CompiledLifecycle:
        metric_names: dict[str, int] = {}
        anchor_names: dict[str, int] = {}
        stages: list[_CompiledStage] = []
        flips: dict[tuple[int, timedelta], None] = {}
        for stage in model.stages:
            metrics: list[tuple[int, Callable[[Any, Any], Any], Any]] = []
            elapsed: list[tuple[int, timedelta, bool]] = []
            for criterion in stage.when:
                if isinstance(criterion, ElapsedCriterion):
                    anchor = anchor_names.setdefault(criterion.since, len(anchor_names))
                    window = criterion.window
                    elapsed.append((anchor, window, criterion.at_least is not None))
                    flips[(anchor, window)] = None
                else:
                    metric = metric_names.setdefault(criterion.metric, len(metric_names))
                    metrics.append((metric, _OPS[criterion.op], criterion.value))
            stages.append(_CompiledStage(stage.name, tuple(metrics), tuple(elapsed)))
        reads = 0
        for name in (*metric_names, *anchor_names):
            reads |= _READS[name]
        digest = hashlib.sha256(model.model_dump_json().encode()).digest()
        return cls(
            metrics=tuple(METRICS[name] for name in metric_names),
            anchors=tuple(anchor_names),
            stages=tuple(stages),
            flips=tuple(flips),
            reads=reads,
            tag=int.from_bytes(digest[:7], "big") or 1,  # never 0: "evaluated under none"
        )

    def timeline(self, profile: Profile) -> Timeline:
        key = [metric(profile) for metric in self.metrics]
        for name in self.anchors:
            anchor: datetime | None = getattr(profile, name)
            # The offset is part of the key: an equal instant in another zone prints
            # differently, and timer ids are derived from the printed instants.
            key += (anchor, anchor.utcoffset() if anchor is not None else None)
        found = self._timelines.get(tuple(key))
        if found is None:
            if len(self._timelines) >= _TIMELINES_KEPT:
                self._timelines.clear()
            values = key[: len(self.metrics)]
            anchors = key[len(self.metrics) :: 2]
            found = self._timelines[tuple(key)] = self._timeline(values, anchors)
        return found

    def _timeline(self, values: list[Any], anchors: list[Any]) -> Timeline:
        candidates = [
            stage
            for stage in self.stages
            if all(compare(values[index], value) for index, compare, value in stage.metrics)
        ]
        instants = sorted(
            {anchor + window for index, window in self.flips if (anchor := anchors[index])}
        )
        stages = [self._stage_at(candidates, anchors, None)]
        stages += [self._stage_at(candidates, anchors, instant) for instant in instants]
        return Timeline(tuple(instants), tuple(stages))

    def _stage_at(
        self,
        candidates: list[_CompiledStage],
        anchors: list[Any],
        now: datetime | None,
    ) -> str:
        """The first candidate whose elapsed criteria hold at ``now`` (None: before every
        instant, where no ``at_least`` holds yet and every ``less_than`` still does)."""
        for stage in candidates:
            for index, window, at_least in stage.elapsed:
                anchor = anchors[index]
                if anchor is None:
                    break
                if at_least:
                    if now is None or now < anchor + window:
                        break
                elif now is not None and now >= anchor + window:
                    break
            else:
                return stage.name
        return self.stages[-1].name  # unreachable: the last stage has no criteria


def default_lifecycle(
    *,
    lapsed_after: timedelta = timedelta(days=180),
    at_risk_after: timedelta = timedelta(days=90),
    loyal_orders: int = 5,
    repeat_orders: int = 2,
) -> LifecycleModel:
    """The contract's default stages, with its thresholds as keyword arguments."""
    bought: dict[str, Any] = {"metric": "orders", "op": "gte", "value": 1}
    never_bought: dict[str, Any] = {"metric": "orders", "op": "eq", "value": 0}
    return LifecycleModel.model_validate(
        {
            "stages": [
                {
                    "name": "lapsed",
                    "description": "bought before, nothing for a long time",
                    "when": [bought, {"since": "last_order_at", "at_least": lapsed_after}],
                },
                {
                    "name": "at_risk",
                    "description": "bought before, nothing for a while",
                    "when": [bought, {"since": "last_order_at", "at_least": at_risk_after}],
                },
                {
                    "name": "loyal",
                    "when": [{"metric": "orders", "op": "gte", "value": loyal_orders}],
                },
                {
                    "name": "repeat",
                    "when": [{"metric": "orders", "op": "gte", "value": repeat_orders}],
                },
                {"name": "first_time", "when": [bought]},
                {
                    "name": "engaged",
                    "description": "added to cart or checked out, never bought",
                    "when": [never_bought, {"metric": "cart_activity", "op": "gte", "value": 1}],
                },
                {
                    "name": "prospect",
                    "description": "known (email or phone), never bought",
                    "when": [never_bought, {"metric": "known", "op": "eq", "value": True}],
                },
                {"name": "visitor", "description": "anonymous, never bought"},
            ]
        }
    )


def next_stage(model: LifecycleModel, profile: Profile, *, now: datetime) -> str:
    """The first stage whose criteria all hold at ``now``."""
    return model.compiled.timeline(profile).stage_at(now)


def boundaries(model: LifecycleModel, profile: Profile) -> list[datetime]:
    """Every instant at which some elapsed-time criterion of ``model`` flips, ascending.

    The stage can change by time alone only at these instants.
    """
    return list(model.compiled.timeline(profile).instants)


def next_stage_change_at(
    model: LifecycleModel, profile: Profile, *, now: datetime
) -> datetime | None:
    """When time alone would next change the stage (strictly after ``now``), or None.

    Elapsed criteria flip only at their boundaries, so the stage is constant between
    consecutive boundaries: checking each future boundary in order is exact.
    """
    return model.compiled.timeline(profile).next_change_at(now)
