"""Builders shared by the engine-core unit tests (a uniquely named module, not a package)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.trigger_engine.core.lifecycle import LifecycleModel, default_lifecycle
from services.trigger_engine.core.rule_checks import parse_rule
from services.trigger_engine.core.rules import Rule
from services.trigger_engine.core.ruleset import RuleSet
from services.trigger_engine.core.simulate import Simulator
from shared.envelope import Event, EventV1, decode_event
from shared.ids import event_id

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[3] / "services" / "trigger_engine" / "examples"
_seq = itertools.count()


def at(**delta: float) -> datetime:
    return T0 + timedelta(**delta)


def event(
    name: str | None,
    when: datetime,
    *,
    customer: str = "user-1",
    properties: dict[str, Any] | None = None,
    traits: dict[str, Any] | None = None,
    call: str = "track",
    anonymous: bool = False,
    anonymous_id: str | None = None,
    message_id: str | None = None,
    received: datetime | None = None,
) -> Event:
    """An event as the engine reads it: built as ingest builds it, through the wire format."""
    mid = message_id or f"m{next(_seq)}"
    record = EventV1(
        event_id=event_id("shop", mid),
        source="shop",
        message_id=mid,
        customer_key=customer,
        call=call,  # type: ignore[arg-type,unused-ignore]
        event=name,
        user_id=None if anonymous else customer,
        anonymous_id=customer if anonymous else anonymous_id,
        properties=properties or {},
        traits=traits or {},
        timestamp=when,
        received_at=received or when,
    )
    return decode_event(record.to_bytes())


def identify(when: datetime, customer: str = "user-1", **traits: Any) -> Event:
    return event(None, when, customer=customer, call="identify", traits=traits)


def example(key: str, **overrides: Any) -> Rule:
    data = json.loads((EXAMPLES / f"{key}.json").read_text())
    data.update(overrides)
    return parse_rule(data)


def rule(**fields: Any) -> Rule:
    data: dict[str, Any] = {
        "key": "test-rule",
        "name": "test rule",
        "trigger": {"type": "event", "event": "Product Added"},
        "steps": [{"wait": "PT1H"}, {"send": {"channel": "email", "template": "t"}}],
    }
    data.update(fields)
    return parse_rule(data)


def simulator(*rules: Rule, lifecycle: LifecycleModel | None = None) -> Simulator:
    return Simulator(rules=RuleSet.of(rules), lifecycle=lifecycle or default_lifecycle())


def of_type(effects: list[Any], kind: str) -> list[Any]:
    return [effect for effect in effects if effect.type == kind]
