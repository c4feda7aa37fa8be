"""The engine's Prometheus metrics (consumer lag and batch timings come from ``shared``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("clm_engine_events_total", "Events folded through the core", ["outcome"])
ACTIONS = Counter("clm_engine_actions_total", "Actions written to the outbox", ["rule"])
SENDS_SKIPPED = Counter(
    "clm_engine_sends_skipped_total",
    "Sends the send policy refused (reason: opted_out, no_opt_in, frequency_capped)",
    ["rule", "channel", "reason"],
)
SENDS_DEFERRED = Counter(
    "clm_engine_sends_deferred_total",
    "Sends the send policy postponed to the end of the customer's quiet hours",
    ["rule", "channel"],
)
SENDS_HELD_OUT = Counter(
    "clm_engine_sends_held_out_total",
    "Sends not made because the customer is in the rule's holdout group",
    ["rule"],
)
STAGE_TRANSITIONS = Counter(
    "clm_engine_stage_transitions_total", "Lifecycle stage transitions", ["from", "to", "cause"]
)
LIFECYCLE_REEVALUATED = Counter(
    "clm_engine_lifecycle_reevaluated_total",
    "Customers re-evaluated by lifecycle passes (after a lifecycle model change)",
)
LIFECYCLE_PASS_TRANSITIONS = Counter(
    "clm_engine_lifecycle_pass_transitions_total",
    "Stage transitions made by lifecycle passes (cause model, or time for a due stage timer)",
)
LIFECYCLE_PASS_FAILURES = Counter(
    "clm_engine_lifecycle_pass_failures_total",
    "Customers a lifecycle pass could not re-evaluate (logged and skipped; the partition is "
    "rebuilt)",
)
MERGES = Counter("clm_engine_merges_total", "Anonymous customers merged into known ones")
FOLD_SECONDS = Histogram(
    "clm_engine_fold_seconds",
    "Time to fold one poll's records (load, fold, timers, action flush)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TIMERS_FIRED = Counter("clm_engine_timers_fired_total", "Durable timers fired", ["kind"])
TIMER_LATENESS = Histogram(
    "clm_engine_timer_lateness_seconds",
    "How long after its due time a timer fired",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
TIMERS_FAILED = Counter(
    "clm_engine_timers_failed_total",
    "Timers that failed to fire (logged; the partition is rebuilt and the timer dropped)",
)
TIMER_BACKLOG = Gauge(
    "clm_engine_timer_backlog",
    "Timers past their release time by the clock and not yet fired (a backlog that stays "
    "up while a partition's watermark lags: see clm_engine_partition_watermark_lag_seconds)",
)
WATERMARK_LAG = Gauge(
    "clm_engine_partition_watermark_lag_seconds",
    "How far a clm.events partition's watermark is behind the clock (timers wait for the "
    "lowest); NaN before a consumer has established it",
    ["partition"],
)
TIMERS_PENDING = Gauge(
    "clm_engine_timers_pending", "Customers with a pending timer on this instance's partitions"
)
OUTBOX_BACKLOG = Gauge("clm_engine_outbox_backlog", "Outbox rows not yet published")
OUTBOX_PUBLISHED = Counter(
    "clm_engine_outbox_published_total", "Outbox rows published to clm.actions", ["kind"]
)
RETENTION_DELETED = Counter(
    "clm_engine_retention_deleted_total",
    "Rows the retention job deleted (table: outbox, events)",
    ["table"],
)
RETENTION_OLDEST_AGE = Gauge(
    "clm_engine_retention_oldest_age_seconds",
    "Age of the oldest row retention governs (outbox: published_at of published rows; "
    "events: received_at), refreshed by the retention job; 0 when there is none",
    ["table"],
)
CHECKPOINTS = Counter(
    "clm_engine_checkpoints_total", "Checkpoints of an owner's partitions (one transaction each)"
)
CHECKPOINT_WAITS = Counter(
    "clm_engine_checkpoint_waits_total",
    "Times an owner stopped folding until its checkpoint in flight was written, because a "
    "quarter of CLM_STATE_CACHE_SIZE states had changed since (PostgreSQL is slow)",
)
CHECKPOINT_ROWS = Counter(
    "clm_engine_checkpoint_states_total", "Customer states written by checkpoints"
)
CHECKPOINT_RETRIES = Counter(
    "clm_engine_database_retries_total",
    "Owner database calls tried again after a transient failure (what: checkpoint, action "
    "flush, state load, ...)",
    ["what"],
)
PARTITIONS_OWNED = Gauge("clm_engine_partitions_owned", "clm.events partitions this instance owns")
STATES_IN_MEMORY = Gauge("clm_engine_states_in_memory", "Customer states this instance holds")
