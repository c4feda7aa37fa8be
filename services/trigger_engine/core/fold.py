"""Many inputs for one customer without a copy of the state per input.

:func:`~.engine.step` is pure, so it copies the whole state (profile, runs, timers, …) for
every input; over a batch that copy costs more than the decisions. Two ways around it that
give exactly the same states and effects as stepping input by input:

- :func:`step_many`: pure too, but copies ``state`` once for the whole sequence;
- :func:`advance`: no copy at all, for a caller that *owns* the state — one it decoded from
  storage itself, or got from :func:`step_many`/:func:`step` and will not share. The I/O
  layer folds a batch this way: each customer's state is decoded once per batch (or taken
  from its cache of states it wrote), advanced input by input, then written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from shared.envelope import Event

from .context import StepContext
from .effects import Effect
from .engine import StepResult, apply, is_noop
from .inputs import TimerFired
from .lifecycle import LifecycleModel
from .plain import deep_copy
from .policy import NO_POLICY, SendPolicy
from .ruleset import RuleSet
from .state import CustomerState


def advance(
    state: CustomerState,
    input: Event | TimerFired,
    *,
    rules: RuleSet,
    lifecycle: LifecycleModel,
    now: datetime,
    policy: SendPolicy = NO_POLICY,
) -> list[Effect] | None:
    """``step`` applied to ``state`` itself: returns the effects, or None for a no-op.

    Afterwards ``state`` is what ``step(state, input, …).state`` would have returned. Only
    for a state nobody else holds a reference to.
    """
    if is_noop(state, input, now=now):
        return None
    ctx = StepContext(state=state, rules=rules, lifecycle=lifecycle, now=now, policy=policy)
    apply(ctx, input)
    return ctx.effects


def step_many(
    state: CustomerState,
    inputs: Iterable[Event | TimerFired],
    *,
    rules: RuleSet,
    lifecycle: LifecycleModel,
    now: datetime,
    policy: SendPolicy = NO_POLICY,
) -> StepResult:
    """The same state and effects as stepping ``inputs`` one by one; ``state`` is untouched.

    ``state`` is copied once, on the first input that is not a no-op (so a sequence of
    no-ops returns ``state`` itself, as ``step`` does).
    """
    working: CustomerState | None = None
    effects: list[Effect] = []
    for input in inputs:
        if working is None:
            if is_noop(state, input, now=now):
                continue
            working = deep_copy(state)
        produced = advance(working, input, rules=rules, lifecycle=lifecycle, now=now, policy=policy)
        if produced:
            effects.extend(produced)
    return StepResult(state if working is None else working, effects)
