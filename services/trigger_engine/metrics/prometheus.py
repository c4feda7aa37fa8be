"""The engine's Prometheus metrics (consumer lag and batch timings come from ``shared``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("clm_engine_events_total", "Events folded through the core", ["outcome"])
ACTIONS = Counter("clm_engine_actions_total", "Actions written to the outbox", ["rule"])
STAGE_TRANSITIONS = Counter(
    "clm_engine_stage_transitions_total", "Lifecycle stage transitions", ["from", "to", "cause"]
)
MERGES = Counter("clm_engine_merges_total", "Anonymous customers merged into known ones")
BATCH_RETRIES = Counter(
    "clm_engine_batch_retries_total", "Batches redone after a concurrent identity change"
)
FOLD_SECONDS = Histogram(
    "clm_engine_fold_seconds",
    "Time to fold one batch and write it (excluding the commit)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TIMERS_FIRED = Counter("clm_engine_timers_fired_total", "Durable timers fired", ["kind"])
TIMER_LATENESS = Histogram(
    "clm_engine_timer_lateness_seconds",
    "How long after its due time a timer fired",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
TIMERS_PARKED = Counter(
    "clm_engine_timers_parked_total", "Timers that failed alone and were set aside for an hour"
)
TIMER_BACKLOG = Gauge("clm_engine_timer_backlog", "Timers due and not yet fired")
TIMERS_PENDING = Gauge("clm_engine_timers_pending", "Timers pending (due or not)")
OUTBOX_BACKLOG = Gauge("clm_engine_outbox_backlog", "Outbox rows not yet published")
OUTBOX_PUBLISHED = Counter(
    "clm_engine_outbox_published_total", "Outbox rows published to clm.actions", ["kind"]
)
