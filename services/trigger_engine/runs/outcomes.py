"""Sends a run did not make (held out, skipped or deferred by the send policy), for the
Prometheus counters.

The writer collects them from a fold's effects (:func:`send_outcomes`); the edge that owns
the transaction counts them (:func:`count`) only once it has committed, so a batch that is
rolled back and redone is counted once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from services.trigger_engine.core.effects import Effect, HeldOut, SendDeferred, SendSkipped
from services.trigger_engine.metrics import prometheus as m

OutcomeKind = Literal["held_out", "skipped", "deferred"]


@dataclass(frozen=True, slots=True)
class SendOutcome:
    kind: OutcomeKind
    rule: str
    channel: str | None = None
    reason: str | None = None


def send_outcomes(effects: Iterable[Effect]) -> list[SendOutcome]:
    """The held-out, skipped and deferred sends among ``effects``, in order."""
    found: list[SendOutcome] = []
    for effect in effects:
        if isinstance(effect, SendSkipped):
            found.append(SendOutcome("skipped", effect.rule, effect.channel, effect.reason))
        elif isinstance(effect, SendDeferred):
            found.append(SendOutcome("deferred", effect.rule, effect.channel, effect.reason))
        elif isinstance(effect, HeldOut):
            found.append(SendOutcome("held_out", effect.rule))
    return found


def count(outcomes: Iterable[SendOutcome]) -> None:
    """Add committed outcomes to ``clm_engine_sends_{skipped,deferred,held_out}_total``."""
    for outcome in outcomes:
        if outcome.kind == "skipped":
            m.SENDS_SKIPPED.labels(outcome.rule, outcome.channel, outcome.reason).inc()
        elif outcome.kind == "deferred":
            m.SENDS_DEFERRED.labels(outcome.rule, outcome.channel).inc()
        else:
            m.SENDS_HELD_OUT.labels(outcome.rule).inc()
