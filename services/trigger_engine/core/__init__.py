"""The deterministic, pure core of the trigger engine.

Everything here is a function of its arguments: no database, Kafka, wall clock or randomness.
The I/O layer loads a customer's :class:`~.state.CustomerState`, calls :func:`~.engine.step`
with the current rule set, lifecycle model and ``now``, then persists the new state and the
returned effects in one transaction. Back-tests drive the same core with a virtual clock
(:mod:`.simulate`).
"""

from .effects import (
    CancelActions,
    CancelTimer,
    Converted,
    Effect,
    EmitAction,
    HeldOut,
    RunCompleted,
    RunExited,
    RunStarted,
    SendDeferred,
    SendSkipped,
    SetTimer,
    StageTransition,
)
from .engine import StepResult, step
from .inputs import Input, LifecycleChanged, StageChanged, TimerFired
from .lifecycle import LifecycleModel, default_lifecycle, next_stage, next_stage_change_at
from .merging import merge_states
from .policy import NO_POLICY, Allow, Defer, SendPolicy, Skip, check_send
from .rule_checks import RuleError, RuleIssue, parse_rule
from .rules import Rule
from .ruleset import RuleSet
from .state import CustomerState

__all__ = [
    "NO_POLICY",
    "Allow",
    "CancelActions",
    "CancelTimer",
    "Converted",
    "CustomerState",
    "Defer",
    "Effect",
    "EmitAction",
    "HeldOut",
    "Input",
    "LifecycleChanged",
    "LifecycleModel",
    "Rule",
    "RuleError",
    "RuleIssue",
    "RuleSet",
    "RunCompleted",
    "RunExited",
    "RunStarted",
    "SendDeferred",
    "SendPolicy",
    "SendSkipped",
    "SetTimer",
    "Skip",
    "StageChanged",
    "StageTransition",
    "StepResult",
    "TimerFired",
    "check_send",
    "default_lifecycle",
    "merge_states",
    "next_stage",
    "next_stage_change_at",
    "parse_rule",
    "step",
]
