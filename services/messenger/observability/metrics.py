"""The messenger's Prometheus metrics.

Per-destination error rate: ``clm_messenger_destination_error_ratio`` (share of failed
attempts over the last ``CLM_ERROR_RATE_WINDOW_SECONDS``), or from the counters,
``sum by (destination) (rate(clm_messenger_attempts_total{outcome!="delivered"}[5m]))
/ sum by (destination) (rate(clm_messenger_attempts_total[5m]))``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACTIONS = Counter("clm_messenger_actions_total", "Actions consumed from clm.actions", ["channel"])
ATTEMPTS = Counter(
    "clm_messenger_attempts_total",
    "Webhook attempts by destination and outcome (delivered, retry, failed, gone, dead)",
    ["destination", "outcome"],
)
ATTEMPT_SECONDS = Histogram(
    "clm_messenger_attempt_seconds",
    "Latency of one webhook attempt",
    ["destination"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
UNSENT = Counter(
    "clm_messenger_unsent_total",
    "Deliveries ended without an attempt (suppressed, failed before sending, cancelled)",
    ["status"],
)
CANCELLED = Counter(
    "clm_messenger_cancelled_total",
    "Deliveries cancelled because their run ended before they were sent (ActionCancelV1), "
    "by the run's end reason (exit_when, audience, rule_disabled, rule_version_missing, merged)",
    ["reason"],
)
DELIVERIES = Gauge("clm_messenger_deliveries", "Deliveries by status", ["status"])
RETRY_BACKLOG = Gauge(
    "clm_messenger_retry_backlog", "Deliveries waiting for a retry (status retrying)"
)
DUE_BACKLOG = Gauge(
    "clm_messenger_due_backlog", "Pending or retrying deliveries already due, not yet sent"
)
DEAD = Gauge("clm_messenger_dead", "Deliveries out of retries (status dead)")
ERROR_RATIO = Gauge(
    "clm_messenger_destination_error_ratio",
    "Share of attempts that did not deliver, per destination, over the recent window",
    ["destination"],
)
INFLIGHT = Gauge("clm_messenger_inflight", "Attempts in flight in this process")
