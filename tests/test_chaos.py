"""`make chaos` in short: a few hundred customers through `clm run` while each service is
SIGKILLed once, the broker is restarted, PostgreSQL is paused and the receiver is out; every
abandoner gets exactly one reminder and no buyer gets one. Plus the oracle's own rules."""

from __future__ import annotations

import asyncio

import pytest

from bench.chaos import Options, run
from bench.chaos_faults import KILLED
from bench.chaos_oracle import Customer, judge, plan
from bench.webhook_sink import Hit

RULE = "cart"


def _hit(webhook_id: str, customer: str, status: int = 200, *, rule: str = RULE) -> Hit:
    return Hit(webhook_id, customer, rule, status, True, 0.0)


def test_plan_is_seeded_and_has_thirty_percent_buyers() -> None:
    people = plan(1000, rate=100, seed=3, prefix="c")
    assert people == plan(1000, rate=100, seed=3, prefix="c")
    assert sum(c.buys for c in people) == 300
    assert [c.add_at for c in people[:3]] == [0.0, 0.01, 0.02]


def test_oracle_counts_missing_duplicate_wrong_and_redeliveries() -> None:
    people = [
        Customer("a1", False, 0),
        Customer("a2", False, 0),
        Customer("a3", False, 0),
        Customer("b1", True, 0),
        Customer("b2", True, 0),
    ]
    hits = [
        _hit("w1", "a1", 503),  # an outage, then the retry: one reminder, delivered
        _hit("w1", "a1"),
        _hit("w1", "a1"),  # the same webhook-id again: a redelivery, allowed
        _hit("w2", "a2"),
        _hit("w3", "a2", 503),  # a second action for a2, even if never answered 2xx
        _hit("w4", "b1"),  # a buyer reminded
        _hit("w5", "b2"),  # a late buyer reminded: not judged
        _hit("w6", "zz"),  # nobody of ours
        Hit("w7", "a3", RULE, 401, False, 0.0),  # a bad signature
    ]
    tally = judge(people, hits, rule=RULE, late_buyers={"b2"})
    assert (tally.abandoners, tally.delivered) == (3, 2)
    assert tally.missing == ["a3"]
    assert tally.duplicate == ["a2"]
    assert tally.wrongly_sent == ["b1"]
    assert (tally.late_buyers, tally.late_buyers_reminded) == (1, 1)
    assert tally.redeliveries == 1
    assert (tally.unverified, tally.unexpected) == (1, 1)
    assert not tally.ok


def test_faults_are_spread_over_the_run_and_every_service() -> None:
    options = Options(customers=500, rate=50, kills=6, wait=5, seed=2)
    faults = options.faults()
    assert [f.at for f in faults] == sorted(f.at for f in faults)
    assert faults[0].at >= 1.0 and faults[-1].at <= 10 + 5
    kills = [f.service for f in faults if f.kind == "kill"]
    assert sorted(kills) == sorted(list(KILLED) * 2)
    assert sorted(f.kind for f in faults if f.kind != "kill") == ["broker", "outage", "pg_pause"]
    assert faults == options.faults()


@pytest.mark.slow
def test_chaos_short_run_every_abandoner_reminded_once_no_buyer() -> None:
    options = Options(
        customers=300,
        rate=30,
        kills=3,
        wait=12,
        broker_restart=True,
        pg_pause=3,
        receiver_outage=5,
        seed=7,
        timeout=90,
        quiet=20,
    )
    report = asyncio.run(run(options))
    print(report.table())
    assert report.ok, "\n" + report.table() + "\n" + "\n".join(report.fault_errors)
    assert sum(report.kills.values()) == 3 and all(report.kills.values())
    assert report.tally.delivered == report.tally.abandoners == 210
