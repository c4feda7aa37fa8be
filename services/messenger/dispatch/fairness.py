"""How many deliveries each destination may have claimed now (pure).

A destination gets no more than its free concurrency slots, and no more than its token bucket
can pay for within a short horizon, so claimed work never waits long behind its own
destination's limits — and never behind another destination's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.messenger.dispatch.plan import Target
from services.messenger.dispatch.ratelimit import TokenBucket

#: Claim what the bucket can pay for within this many seconds.
RATE_HORIZON = 2.0


def claim_caps(
    targets: Iterable[Target],
    *,
    inflight: Mapping[str, int],
    buckets: Mapping[str, TokenBucket],
    now: float,
    free: int,
) -> dict[str, int]:
    caps: dict[str, int] = {}
    for target in targets:
        if not target.enabled:  # claimed only to be failed at once: no slot, no token
            caps[target.id] = free
            continue
        slots = max(0, target.max_concurrency - inflight.get(target.id, 0))
        bucket = buckets.get(target.id)
        tokens = bucket.affordable(now, horizon=RATE_HORIZON) if bucket else slots
        caps[target.id] = max(0, min(slots, tokens, free))
    return caps
