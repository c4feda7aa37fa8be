"""Everything the core derives by hashing, so that a replay lands on the same ids and buckets.

Ids use :func:`shared.ids.derive_id` (uuid5). Holdout buckets use SHA-256 rather than
``hash()``, which Python salts per process.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from shared.ids import derive_id, derive_text


def run_id(rule_key: str, rule_version: int, customer_key: str, trigger_message_id: str) -> str:
    return derive_text("run", rule_key, rule_version, customer_key, trigger_message_id)


def action_id(run: str, step_index: int) -> str:
    """The webhook-id of a send: the same on every retry and replay."""
    return "act_" + derive_text("action", run, step_index)


def cancel_id(run: str) -> str:
    """The id of the cancellation a run sends (it ended early, or an exit event came after it
    completed): one per run, the same on every replay (the outbox row's id)."""
    return "cancel_" + derive_text("cancel", run)


def step_timer_id(run: str, step_index: int) -> str:
    return derive_text("timer", "step", run, step_index)


def deferral_timer_id(run: str, step_index: int, until: datetime) -> str:
    """The timer that resumes a send deferred by quiet hours."""
    return str(derive_id("timer", "deferred-send", run, step_index, _iso(until)))


def inactivity_timer_id(
    customer_key: str, rule_key: str, rule_version: int, last_seen_at: datetime
) -> str:
    return derive_text(
        "timer", "inactivity", customer_key, rule_key, rule_version, _iso(last_seen_at)
    )


def stage_timer_id(customer_key: str, due_at: datetime) -> str:
    return derive_text("timer", "stage", customer_key, _iso(due_at))


def stage_message_id(from_stage: str | None, to_stage: str, at: datetime) -> str:
    """The trigger message id of a stage change (there is no storefront message for it)."""
    return f"stage:{from_stage or '-'}>{to_stage}@{_iso(at)}"


def lifecycle_message_id(lifecycle_version: int) -> str:
    """The cause of a stage change made by re-evaluating under a new lifecycle model."""
    return f"lifecycle:v{lifecycle_version}"


def holdout_bucket(rule_key: str, customer_key: str) -> float:
    """A stable number in [0, 100) per (rule, customer); below ``holdout_percent`` = held out."""
    digest = hashlib.sha256(f"holdout\x1f{rule_key}\x1f{customer_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def _iso(value: datetime) -> str:
    return value.isoformat()
