"""What every writer of a fold does once its transaction committed (never before: a batch
that rolls back has sent nothing and changed nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.trigger_engine.context import EngineContext
from services.trigger_engine.metrics import prometheus as m
from services.trigger_engine.processing.writer import Written
from services.trigger_engine.runs import outcomes


def after_commit(ctx: EngineContext, written: Written) -> None:
    """Count the merges, stage transitions, actions and send decisions, wake the relay for new
    outbox rows and the timer worker for a timer due before its next look."""
    if written.merges:
        m.MERGES.inc(written.merges)
    for from_stage, to_stage, cause in written.transitions:
        m.STAGE_TRANSITIONS.labels(from_stage, to_stage, cause).inc()
    for rule in written.action_rules:
        m.ACTIONS.labels(rule).inc()
    outcomes.count(written.send_outcomes)
    if written.actions:
        ctx.relay.notify()
    soon = datetime.now(UTC) + timedelta(seconds=ctx.settings.timer_poll_seconds)
    if written.earliest_timer is not None and written.earliest_timer <= soon:
        ctx.timer_wake.set()
