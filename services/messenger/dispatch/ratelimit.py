"""A token bucket per destination (pure: the caller passes the clock)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (one second's worth, at least
    one). :meth:`reserve` takes a token now or books the next free one and says how long to
    wait for it, so waiters are served in order without polling."""

    rate: float
    burst: float = 0.0
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError("rate must be positive")
        if self.burst <= 0:
            self.burst = max(1.0, self.rate)
        self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if self.updated is not None and now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def reserve(self, now: float) -> float:
        """Take one token; return the seconds to wait before using it (0 if available)."""
        self._refill(now)
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def cancel(self, now: float) -> None:
        """Give back a reserved token that was not used."""
        self._refill(now)
        self.tokens = min(self.burst, self.tokens + 1.0)

    def affordable(self, now: float, *, horizon: float) -> int:
        """How many sends could start within ``horizon`` seconds (at least 0)."""
        self._refill(now)
        return max(0, math.floor(self.tokens + horizon * self.rate))

    def set_rate(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if rate != self.rate:
            self.rate = rate
            self.burst = max(1.0, rate)
            self.tokens = min(self.tokens, self.burst)
