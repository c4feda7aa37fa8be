"""Where a run's send meets the send policy: decide with :func:`.policy.check_send`, then
book the outcome in the step's state and effects.

- ``Allow``: the send is logged in ``state.sends`` (only while some channel has caps), and
  the caller emits the action.
- ``Defer(until)``: a ``step`` timer (id derived from run, step and ``until``) is set for
  the run; the run stays on this send step, and when the timer fires
  :func:`.runs.on_step_timer` executes the same step again: audience, consent, quiet hours
  and caps are all checked afresh. An ``exit_when`` event meanwhile cancels it like a wait.
- ``Skip(reason)``: a ``SendSkipped`` record; the run goes on to its next step.

The moment checked is when the message would actually leave: the run's logical time, or
``now`` if processing is later (a late event, a late timer). A message is never sent
inside quiet hours just because its trigger happened before them.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from . import derive
from .context import StepContext
from .effects import SendDeferred, SendSkipped
from .policy import Allow, Defer, SendDecision, check_send, merge_logs, record_send
from .state import CustomerState, Run


class _Record(TypedDict):
    customer_key: str
    run_id: str
    rule: str
    rule_version: int
    holdout: bool
    at: datetime
    step: int
    action_id: str
    channel: str


def admit(
    ctx: StepContext, run: Run, channel: str, *, action_id: str, at: datetime
) -> SendDecision:
    """The policy's decision on this send, with its bookkeeping done (see the module)."""
    state = ctx.state
    moment = max(at, ctx.now)
    profile = state.profile
    decision = check_send(
        ctx.policy,
        profile.traits,
        state.sends,
        channel,
        now=moment,
        device_timezone=profile.context_timezone,
    )
    if isinstance(decision, Allow):
        if ctx.policy.caps or state.sends:
            state.sends = record_send(ctx.policy, state.sends, channel, at=moment)
        return decision
    record = _Record(
        customer_key=ctx.customer_key,
        run_id=run.run_id,
        rule=run.rule_key,
        rule_version=run.rule_version,
        holdout=run.holdout,
        at=at,
        step=run.step_index,
        action_id=action_id,
        channel=channel,
    )
    if isinstance(decision, Defer):
        timer_id = derive.deferral_timer_id(run.run_id, run.step_index, decision.until)
        run.timer_id = timer_id
        ctx.set_timer(timer_id, decision.until, "step", run_id=run.run_id, rule_key=run.rule_key)
        ctx.effects.append(SendDeferred(**record, until=decision.until))
    else:
        ctx.effects.append(SendSkipped(**record, reason=decision.reason))
    return decision


def merge_sends(known: CustomerState, other: CustomerState) -> None:
    """Give ``known`` (the step's working state) ``other``'s send log too."""
    if other.sends:
        known.sends = merge_logs(known.sends, other.sends)
