"""`make bench-fold`: the engine's pure fold in one process, without Kafka or PostgreSQL.

Decodes the synthetic storefront's records, folds them through the core with the nine
example plays (per customer, in order, in batches), and encodes the states each batch
changed, as the engine does; prints the CPU time per event of each part, overall and per
event name. Use it to see what a change to the core costs before the end-to-end
`make bench`. (Identity merges are left out: the core folds each record into its own key.)
"""

from __future__ import annotations

import argparse
import gc
import time
from collections import defaultdict
from datetime import UTC, datetime

from bench.storefront import Storefront
from services.trigger_engine.core.fold import advance
from services.trigger_engine.core.lifecycle import default_lifecycle
from services.trigger_engine.core.rule_checks import parse_rule
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.state import CustomerState, encode_state
from services.trigger_engine.rules.examples import load_examples
from shared.envelope import decode_event


class Fold:
    def __init__(self, *, by_event: bool) -> None:
        self.by_event = by_event
        self.rules = RuleSet.of([parse_rule(body) for body in load_examples()])
        self.lifecycle = default_lifecycle()
        self.states: dict[str, CustomerState] = {}
        self.seconds: dict[str, float] = defaultdict(float)
        self.by_name: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        self.effects = 0

    def batch(self, records: list[bytes], *, now: datetime) -> None:
        clock = time.process_time
        started = clock()
        events = [decode_event(raw) for raw in records]
        decoded = clock()
        changed: set[str] = set()
        for event in events:
            before = clock()
            key = event.customer_key
            state = self.states.get(key)
            if state is None:
                state = self.states[key] = CustomerState.new(key)
            produced = advance(state, event, rules=self.rules, lifecycle=self.lifecycle, now=now)
            if produced is not None:
                changed.add(key)
                self.effects += len(produced)
            spent = self.by_name[event.event or event.call]
            spent[0] += clock() - before
            spent[1] += 1
        folded = clock()
        for key in changed:
            encode_state(self.states[key])
        self.seconds["decode"] += decoded - started
        self.seconds["core"] += folded - decoded
        self.seconds["encode"] += clock() - folded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--by-event", action="store_true", help="also time each event (adds clock overhead)"
    )
    args = parser.parse_args()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)  # as the engine process runs (services/trigger_engine)

    now = datetime.now(UTC)
    store = Storefront(customers=args.customers, seed=args.seed)
    records = [record.value for record in store.history(args.events, now=now)]
    fold = Fold(by_event=args.by_event)
    for start in range(0, len(records), args.batch):
        fold.batch(records[start : start + args.batch], now=now)

    n = len(records)
    plays = len(fold.rules.active())
    print(
        f"events:  {n:,} over {args.customers:,} customers, {plays} plays, batches of {args.batch}"
    )
    for part in ("decode", "core", "encode"):
        print(f"{part + ':':8} {fold.seconds[part] / n * 1e6:6.1f} µs/event")
    print(
        f"total:   {sum(fold.seconds.values()) / n * 1e6:6.1f} µs/event ({fold.effects:,} effects)"
    )
    if args.by_event:
        print("core by event (CPU µs per event, timed one by one: with the clock's overhead):")
        for name, (seconds, count) in sorted(fold.by_name.items(), key=lambda kv: -kv[1][0]):
            print(f"  {name:22} {count:7,}  {seconds / count * 1e6:7.1f} µs")


if __name__ == "__main__":
    main()
