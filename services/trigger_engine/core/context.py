"""The working context of one step: the state being built, the inputs given, the effects so far.

It owns the small bookkeeping every decision needs (timers in state and as effects, the
condition views), so the decision modules stay about decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from math import isfinite
from typing import Any

from shared.envelope import Event

from . import views
from .conditions import Condition, holds, resolve
from .effects import CancelTimer, CustomerSnapshot, Effect, SetTimer
from .inputs import TimerKind
from .lifecycle import LifecycleModel, Timeline
from .plain import json_view
from .policy import NO_POLICY, SendPolicy
from .ruleset import RuleSet
from .state import CustomerState, PendingTimer


@dataclass(slots=True)
class StepContext:
    state: CustomerState
    rules: RuleSet
    lifecycle: LifecycleModel
    now: datetime
    policy: SendPolicy = NO_POLICY
    #: when the input being applied arrived (an event's ``received_at``); None for a timer or
    #: a lifecycle change. Recorded on the timers the input sets (``PendingTimer.arrived_at``).
    arrived_at: datetime | None = None
    effects: list[Effect] = field(default_factory=list)
    #: the stage or the stage timer may no longer be what the model gives: this step
    #: evaluated the model, or changed what it reads (see :func:`.stages.settled`)
    stage_stale: bool = False
    _profile_view: dict[str, Any] | None = None
    _timeline: Timeline | None = None

    @property
    def customer_key(self) -> str:
        return self.state.customer_key

    def set_timer(
        self,
        timer_id: str,
        due_at: datetime,
        kind: TimerKind,
        *,
        run_id: str | None = None,
        rule_key: str | None = None,
        arrived_at: datetime | None = None,
    ) -> None:
        """Set (or re-set) a timer; ``arrived_at`` defaults to the current input's arrival."""
        arrived = arrived_at if arrived_at is not None else self.arrived_at
        self.state.timers[timer_id] = PendingTimer(
            timer_id=timer_id,
            kind=kind,
            due_at=due_at,
            run_id=run_id,
            rule_key=rule_key,
            arrived_at=arrived,
        )
        self.effects.append(
            SetTimer(
                customer_key=self.customer_key,
                timer_id=timer_id,
                due_at=due_at,
                kind=kind,
                run_id=run_id,
                rule_key=rule_key,
                arrived_at=arrived,
            )
        )

    def cancel_timer(self, timer_id: str | None) -> None:
        if timer_id is not None and self.state.timers.pop(timer_id, None) is not None:
            self.effects.append(CancelTimer(customer_key=self.customer_key, timer_id=timer_id))

    def invalidate_views(self, *, profile: bool = True) -> None:
        """Call after the profile (``profile=True``) or only the stage changed: the stage
        timeline depends on the profile alone."""
        self._profile_view = None
        if profile:
            self._timeline = None

    def profile_changed(self, touched: int) -> None:
        """After an event changed the ``touched`` parts of the profile (``profile.SEEN`` |
        ...): the timeline is kept unless the lifecycle model reads one of them."""
        if touched:
            self._profile_view = None
            if touched & self.lifecycle.compiled.reads:
                self._timeline = None
                self.stage_stale = True

    def timeline(self) -> Timeline:
        """The profile's stages over time under the lifecycle model (see :class:`Timeline`)."""
        self.stage_stale = True
        if self._timeline is None:
            self._timeline = self.lifecycle.compiled.timeline(self.state.profile)
        return self._timeline

    def profile_view(self) -> dict[str, Any]:
        """``profile.*`` as conditions see it: the profile plus its stage."""
        if self._profile_view is None:
            view = json_view(self.state.profile)
            del view["order_log"]
            view["stage"] = self.state.stage
            view["stage_entered_at"] = (
                self.state.stage_entered_at.isoformat() if self.state.stage_entered_at else None
            )
            view["cart"]["value"] = self.state.profile.cart.value
            view["known"] = self.state.profile.known
            self._profile_view = view
        return self._profile_view

    def matches(self, conditions: list[Condition], event: Event | None = None) -> bool:
        """All ``conditions`` hold on the views (read live where :mod:`.views` can)."""
        data: dict[str, Any] | None = None
        for condition in conditions:
            actual = views.read(condition, self.state, event)
            if actual is views.SLOW:
                if data is None:
                    data = {"profile": self.profile_view()}
                    if event is not None:
                        data["event"] = json_view(event)
                actual = resolve(condition.path, data)
            if not holds(condition, actual):
                return False
        return True

    def snapshot(self) -> CustomerSnapshot:
        profile = self.state.profile
        return CustomerSnapshot(
            id=profile.user_id or self.customer_key,
            email=profile.email,
            phone=profile.phone,
            traits=dict(profile.traits),
            stage=self.state.stage,
        )

    def cart(self) -> dict[str, Any]:
        """The open cart as the webhook's ``context.cart`` (JSON values)."""
        cart = self.state.profile.cart
        return {
            "products": [
                {
                    "product_id": item.product_id,
                    "sku": item.sku,
                    "name": item.name,
                    "price": item.price if item.price is None or isfinite(item.price) else None,
                    "quantity": item.quantity,
                }
                for item in cart.products
            ],
            "value": cart.value,
        }
