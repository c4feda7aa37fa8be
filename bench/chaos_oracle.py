"""The chaos run's workload plan and its oracle, both pure.

The plan says who adds to cart when and who buys; the oracle compares what the webhook sink
received with what the plan implies: every abandoner gets exactly one reminder, no buyer
gets one.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bench.webhook_sink import Hit

#: Buyers complete their order this long after adding to cart (event time and send time).
BUY_AFTER = 2.0
BUY_SHARE = 0.3


@dataclass(frozen=True)
class Customer:
    id: str
    buys: bool
    #: seconds after the workload's start at which the customer adds to cart
    add_at: float


def plan(customers: int, *, rate: float, seed: int, prefix: str) -> list[Customer]:
    """``customers`` customers adding to cart at ``rate`` per second, in order; exactly
    ``BUY_SHARE`` of them (chosen by ``seed``) buy ``BUY_AFTER`` seconds after adding."""
    rng = random.Random(seed)
    buyers = set(rng.sample(range(customers), round(customers * BUY_SHARE)))
    return [Customer(f"{prefix}-{i:06d}", i in buyers, i / rate) for i in range(customers)]


@dataclass(frozen=True)
class Tally:
    customers: int
    abandoners: int
    delivered: int
    missing: list[str]
    duplicate: list[str]
    wrongly_sent: list[str]
    #: buyers whose order was acknowledged only after their reminder was due: the engine
    #: may rightly have sent it, so they are not judged
    late_buyers: int
    late_buyers_reminded: int
    #: 2xx answers to a webhook-id beyond its first (allowed: delivery is at least once)
    redeliveries: int
    #: requests whose signature did not verify
    unverified: int
    #: verified requests of another rule or of a customer not in the plan
    unexpected: int

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.duplicate
            or self.wrongly_sent
            or self.unverified
            or self.unexpected
        )


def judge(
    customers: Iterable[Customer],
    hits: Iterable[Hit],
    *,
    rule: str,
    late_buyers: set[str] | frozenset[str] = frozenset(),
) -> Tally:
    """What the sink received against what the plan implies.

    - missing: abandoners with no 2xx answer to any reminder;
    - duplicate: customers sent more than one distinct action (webhook-id), whatever was
      answered;
    - wrongly sent: buyers (except ``late_buyers``) sent any reminder.
    """
    people = {c.id: c for c in customers}
    sent: dict[str, set[str]] = defaultdict(set)  # customer -> webhook-ids, any answer
    delivered: set[str] = set()
    answers: Counter[str] = Counter()  # webhook-id -> 2xx answers
    unverified = unexpected = 0
    for hit in hits:
        if not hit.verified:
            unverified += 1
            continue
        if hit.rule != rule or hit.customer_id not in people:
            unexpected += 1
            continue
        sent[hit.customer_id].add(hit.webhook_id)
        if hit.delivered:
            delivered.add(hit.customer_id)
            answers[hit.webhook_id] += 1
    abandoners = [c.id for c in people.values() if not c.buys]
    judged_buyers = [c.id for c in people.values() if c.buys and c.id not in late_buyers]
    return Tally(
        customers=len(people),
        abandoners=len(abandoners),
        delivered=sum(1 for c in abandoners if c in delivered),
        missing=[c for c in abandoners if c not in delivered],
        duplicate=sorted(c for c, ids in sent.items() if len(ids) > 1),
        wrongly_sent=[c for c in judged_buyers if c in sent],
        late_buyers=len(late_buyers),
        late_buyers_reminded=sum(1 for c in late_buyers if c in sent),
        redeliveries=sum(n - 1 for n in answers.values() if n > 1),
        unverified=unverified,
        unexpected=unexpected,
    )


@dataclass
class Report:
    tally: Tally
    kills: Mapping[str, int]
    faults: list[str]
    #: faults that could not be done (a service that did not come back, say)
    fault_errors: list[str] = field(default_factory=list)
    #: how the wait for deliveries ended: complete, quiet (nothing moved) or timeout
    ended: str = "complete"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.tally.ok and not self.fault_errors

    def rows(self) -> list[tuple[str, object]]:
        t = self.tally
        kills = ", ".join(f"{n} {name}" for name, n in self.kills.items())
        return [
            ("customers", t.customers),
            ("abandoners (expected)", t.abandoners),
            ("delivered (distinct)", t.delivered),
            ("missing", len(t.missing)),
            ("duplicate", len(t.duplicate)),
            ("wrongly sent", len(t.wrongly_sent)),
            ("redeliveries (same webhook-id)", t.redeliveries),
            ("late buys (not judged)", f"{t.late_buyers} ({t.late_buyers_reminded} reminded)"),
            ("unverified / unexpected", f"{t.unverified} / {t.unexpected}"),
            ("kills", f"{sum(self.kills.values())} ({kills})"),
            ("faults", ", ".join(self.faults) or "none"),
            ("fault errors", len(self.fault_errors)),
            ("ended", self.ended),
            ("time", f"{self.seconds:.1f} s"),
            ("result", "PASS" if self.ok else "FAIL"),
        ]

    def table(self) -> str:
        rows = self.rows()
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"  {name:<{width}}  {value}" for name, value in rows)

    def as_dict(self) -> dict[str, object]:
        t = self.tally
        return {
            "customers": t.customers,
            "abandoners": t.abandoners,
            "delivered": t.delivered,
            "missing": len(t.missing),
            "duplicate": len(t.duplicate),
            "wrongly_sent": len(t.wrongly_sent),
            "redeliveries": t.redeliveries,
            "late_buyers": t.late_buyers,
            "late_buyers_reminded": t.late_buyers_reminded,
            "unverified": t.unverified,
            "unexpected": t.unexpected,
            "kills": dict(self.kills),
            "faults": self.faults,
            "fault_errors": self.fault_errors,
            "ended": self.ended,
            "seconds": round(self.seconds, 1),
            "ok": self.ok,
            "examples": {
                "missing": t.missing[:10],
                "duplicate": t.duplicate[:10],
                "wrongly_sent": t.wrongly_sent[:10],
            },
        }
