"""A virtual-clock driver for the pure core: back-tests (``POST /v1/rules/{key}/simulate``)
and property tests run history through exactly the code that runs live.

It plays the part of the I/O layer in memory: keeps each customer's state, keeps the
pending timers the effects asked for, and fires them, in due order, whenever the clock
passes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from shared.envelope import Event

from .effects import CancelTimer, Effect, SetTimer
from .engine import step
from .inputs import TimerFired
from .lifecycle import LifecycleModel
from .policy import NO_POLICY, SendPolicy
from .ruleset import RuleSet
from .state import CustomerState


@dataclass
class Simulator:
    rules: RuleSet
    lifecycle: LifecycleModel
    policy: SendPolicy = NO_POLICY
    states: dict[str, CustomerState] = field(default_factory=dict)
    timers: dict[str, SetTimer] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    clock: datetime | None = None

    def apply(self, customer_key: str, input: Event | TimerFired, *, now: datetime) -> list[Effect]:
        """One step for one customer at ``now``, with its effects applied to the timer table."""
        state = self.states.get(customer_key) or CustomerState.new(customer_key)
        result = step(
            state, input, rules=self.rules, lifecycle=self.lifecycle, now=now, policy=self.policy
        )
        self.states[customer_key] = result.state
        for effect in result.effects:
            if isinstance(effect, SetTimer):
                self.timers[effect.timer_id] = effect
            elif isinstance(effect, CancelTimer):
                self.timers.pop(effect.timer_id, None)
        self.effects.extend(result.effects)
        self.clock = now if self.clock is None else max(self.clock, now)
        return result.effects

    def advance_to(self, until: datetime) -> list[Effect]:
        """Fire every timer due at or before ``until``, each at its own due time."""
        produced: list[Effect] = []
        while True:
            due = [t for t in self.timers.values() if t.due_at <= until]
            if not due:
                break
            timer = min(due, key=lambda t: (t.due_at, t.timer_id))
            del self.timers[timer.timer_id]
            fired = TimerFired(
                timer_id=timer.timer_id, kind=timer.kind, run_id=timer.run_id, due_at=timer.due_at
            )
            now = timer.due_at if self.clock is None else max(self.clock, timer.due_at)
            produced += self.apply(timer.customer_key, fired, now=now)
        return produced

    def feed(self, event: Event, *, now: datetime | None = None) -> list[Effect]:
        """Deliver ``event`` at ``now`` (default: its ``received_at``), firing due timers first."""
        at = event.received_at if now is None else now
        produced = self.advance_to(at)
        return produced + self.apply(event.customer_key, event, now=at)
