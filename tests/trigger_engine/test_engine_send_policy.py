"""The send policy on the running engine: ``GET/PUT /v1/send-policy``, a capped send skipped,
an unconsented one skipped, and a send inside quiet hours deferred to the end of the window
(a window set around the current time in the customer's zone, given as ``traits.timezone``
or as the device's ``context.timezone``). Every decision is on the customer's timeline and in
the ``clm_engine_sends_*_total`` counters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.support.services import Infra
from tests.trigger_engine.engine_support import (
    Engine,
    Rules,
    actions,
    event,
    eventually,
    now,
    produce,
    rule,
)

PutPolicy = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
#: Nepal (UTC+05:45): quiet hours are local wall-clock time, not whole hours off UTC.
ZONE = ZoneInfo("Asia/Kathmandu")
MUG = {"product_id": "p-mug", "name": "Mug", "price": 25}
#: How long the quiet spell of the quiet-hours test lasts from the test's start: the deferral
#: must be seen inside it (setting it up takes well under a second on an idle machine).
QUIET_FOR = timedelta(seconds=20)


@pytest.fixture
async def send_policy(engine: Engine) -> AsyncIterator[PutPolicy]:
    """Sets the engine-wide send policy for one test and restores the previous one after."""
    async with engine.admin() as client:
        before = (await client.get("/v1/send-policy")).json()

    async def put(body: dict[str, Any]) -> dict[str, Any]:
        async with engine.admin() as client:
            response = await client.put("/v1/send-policy", json=body)
        assert response.status_code == 200, response.text
        stored: dict[str, Any] = response.json()
        return stored

    yield put
    async with engine.admin() as client:
        restored = await client.put("/v1/send-policy", json=before)  # "version" is ignored
    assert restored.status_code == 200, restored.text


async def test_send_policy_api_stores_versions_and_explains_what_is_wrong(
    engine: Engine, send_policy: PutPolicy
) -> None:
    async with engine.service.client() as anonymous:  # type: ignore[union-attr]
        assert (await anonymous.get("/v1/send-policy")).status_code == 401
        assert (await anonymous.put("/v1/send-policy", json={})).status_code == 401
    async with engine.admin() as client:
        current = (await client.get("/v1/send-policy")).json()
    stored = await send_policy(
        {
            "caps": {"email": [{"max": 3, "per": "P1D"}, {"max": 10, "per": "P7D"}]},
            "quiet_hours": {"start": "21:00", "end": "08:00"},
            "default_timezone": "Europe/Berlin",
        }
    )
    assert stored["version"] == current["version"] + 1
    assert stored["caps"] == {"email": [{"max": 3, "per": "P1D"}, {"max": 10, "per": "P7D"}]}
    assert stored["quiet_hours"] == {"start": "21:00", "end": "08:00", "channels": None}
    assert stored["consent"]["sms"] == "opt_in"
    async with engine.admin() as client:
        assert (await client.get("/v1/send-policy")).json() == stored
        bad = await client.put(
            "/v1/send-policy",
            json={
                "caps": {"email": [{"max": 3, "per": "1 day"}], "fax": []},
                "quiet_hours": {"start": "9pm", "end": "08:00"},
                "default_timezone": "Mars/Olympus",
            },
        )
        unchanged = (await client.get("/v1/send-policy")).json()
    assert bad.status_code == 422, bad.text
    body = bad.json()
    assert body["code"] == "invalid"
    locs = {e["loc"]: e["message"] for e in body["errors"]}
    assert "must start with 'P'" in locs["caps.email.0.per"]
    assert "'email'" in locs["caps.fax.[key]"]
    assert "'HH:MM'" in locs["quiet_hours.start"]
    assert "unknown IANA time zone 'Mars/Olympus'" in locs["default_timezone"]
    assert "default_timezone: unknown IANA time zone" in body["message"]
    assert unchanged == stored


async def test_a_send_over_the_frequency_cap_or_without_opt_in_is_skipped(
    infra: Infra,
    engine: Engine,
    producer: AIOKafkaProducer,
    rules: Rules,
    prefix: str,
    send_policy: PutPolicy,
) -> None:
    await send_policy({"caps": {"sms": [{"max": 1, "per": "P1D"}]}})
    key = f"{prefix}-texts"
    await rules.create(
        rule(
            prefix,
            "texts",
            steps=[
                {"send": {"channel": "sms", "template": "first"}},
                {"send": {"channel": "sms", "template": "second"}},
            ],
        )
    )
    opted_in, silent = f"{prefix}-opted-in", f"{prefix}-silent"
    refused = f"{prefix}-refused"
    await produce(
        producer,
        event(opted_in, None, call="identify", traits={"phone": "+15550100", "sms_opt_in": True}),
        event(silent, None, call="identify", traits={"phone": "+15550101"}),
        event(refused, None, call="identify", traits={"phone": "+15550102", "sms_opt_in": "no"}),
        event(opted_in, "Product Added", properties=MUG),
        event(silent, "Product Added", properties=MUG),
        event(refused, "Product Added", properties=MUG),
    )

    stats = await eventually(
        lambda: _stats(engine, key, lambda s: s["completed"] == 3), what="the runs to complete"
    )
    assert (stats["sent"], stats["skipped"]) == (1, 5)
    assert stats["skipped_by_reason"] == {"frequency_capped": 1, "no_opt_in": 2, "opted_out": 2}
    skipped = "clm_engine_sends_skipped_total"
    counted = await eventually(
        lambda: _counters(engine, skipped, {"rule": key}, total=5), what="the skips counted"
    )
    assert counted == {
        (("channel", "sms"), ("reason", "frequency_capped"), ("rule", key)): 1,
        (("channel", "sms"), ("reason", "no_opt_in"), ("rule", key)): 2,
        (("channel", "sms"), ("reason", "opted_out"), ("rule", key)): 2,
    }

    runs = await _run_items(engine, refused)
    assert [(r["kind"], r["step"], r.get("reason")) for r in runs] == [
        ("started", None, None),
        ("skipped", 0, "opted_out"),
        ("skipped", 1, "opted_out"),
        ("completed", None, None),
    ]
    assert {(r["rule"], r["rule_version"], r["holdout"]) for r in runs} == {(key, 1, False)}
    assert runs[1]["detail"] == "opted_out"
    capped = await _run_items(engine, opted_in)
    assert [(r["kind"], r.get("reason")) for r in capped] == [
        ("started", None),
        ("skipped", "frequency_capped"),  # step 1; step 0 went out, an action on the timeline
        ("completed", None),
    ]
    found = await actions(infra, prefix, count=1, settle=1.5)
    assert [(a.customer_key, a.data["template"]) for a in found] == [(opted_in, "first")]
    customer = await engine.customer(opted_in)
    assert customer is not None
    [logged] = customer["recent_sends"]["sms"]  # when it left: processing time
    assert datetime.fromisoformat(logged) >= found[0].created_at
    async with engine.admin() as client:
        timeline = (await client.get(f"/v1/customers/{opted_in}/timeline")).json()
        erased = await client.delete(f"/v1/customers/{refused}")
        assert erased.status_code == 202, erased.text
        assert (await client.get(f"/v1/customers/{refused}/timeline")).status_code == 404
    assert [(i["type"], i["data"].get("kind"), i["data"].get("step")) for i in timeline["items"]][
        -4:
    ] == [
        ("run", "started", None),
        ("action", None, 0),
        ("run", "skipped", 1),
        ("run", "completed", None),
    ]
    assert erased.json()["erased"]["run_events"] == 4


@pytest.mark.parametrize("zone_from", ["traits", "context"])
async def test_a_send_inside_quiet_hours_waits_for_their_end_in_the_customers_zone(
    infra: Infra,
    engine: Engine,
    producer: AIOKafkaProducer,
    rules: Rules,
    prefix: str,
    send_policy: PutPolicy,
    zone_from: str,
) -> None:
    """The zone is the shop's ``traits.timezone``, or (without one) the ``context.timezone``
    Segment clients send with every call; the default zone (UTC) is not quiet then."""
    local = now().astimezone(ZONE).replace(microsecond=0)
    # Far enough ahead that the policy, the rule and the fold are all in place well before
    # the window ends, however slow this machine.
    end = local + QUIET_FOR
    await send_policy(
        {
            "quiet_hours": {
                "start": (local - timedelta(minutes=1)).strftime("%H:%M:%S"),
                "end": end.strftime("%H:%M:%S"),
                "channels": ["push"],
            }
        }
    )
    key = f"{prefix}-nightly"
    await rules.create(
        rule(prefix, "nightly", steps=[{"send": {"channel": "push", "template": "nightly"}}])
    )
    shopper = f"{prefix}-shopper"
    added = event(shopper, "Product Added", properties=MUG)
    if zone_from == "traits":
        await produce(
            producer,
            event(shopper, None, call="identify", traits={"timezone": "Asia/Kathmandu"}),
            added,
        )
    else:  # an invalid device zone first: ignored, the valid one on the event itself counts
        page = event(shopper, "Home", call="page")
        await produce(
            producer,
            page.model_copy(update={"context": {"timezone": "Mars/Olympus"}}),
            added.model_copy(update={"context": {"timezone": "Asia/Kathmandu", "locale": "ne"}}),
        )

    waiting = await eventually(lambda: _deferred(engine, shopper), what="the deferral timer")
    assert waiting["kind"] == "step"
    assert datetime.fromisoformat(waiting["due_at"]) == end  # end of the window, Nepal time
    stats = await _stats(engine, key, lambda s: True)
    assert stats is not None and (stats["deferred"], stats["sent"]) == (1, 0)

    deferrals = await eventually(
        lambda: _counters(engine, "clm_engine_sends_deferred_total", {"rule": key}, total=1),
        what="the deferral counted",
    )
    assert deferrals == {(("channel", "push"), ("rule", key)): 1}
    runs = await _run_items(engine, shopper)
    assert [r["kind"] for r in runs] == ["started", "deferred"]  # not sent, not completed
    deferred = runs[1]
    assert (deferred["step"], datetime.fromisoformat(deferred["until"])) == (0, end)
    assert deferred["detail"] == deferred["until"]
    customer = await engine.customer(shopper)
    assert customer is not None
    expected_zone = "Asia/Kathmandu" if zone_from == "context" else None
    assert customer["context_timezone"] == expected_zone
    assert now() < end  # all of the above was seen inside the quiet hours

    if zone_from == "context":
        return  # the zone's source changes nothing below: wait for the window's end once
    [sent] = await actions(infra, prefix, count=1, timeout=QUIET_FOR.total_seconds() + 30)
    assert sent.created_at == end
    assert sent.data["template"] == "nightly"
    assert now() >= end
    runs = await eventually(
        lambda: _run_items(engine, shopper, until="completed"), what="the run to complete"
    )
    assert [r["kind"] for r in runs] == ["started", "deferred", "completed"]


async def _stats(
    engine: Engine, key: str, ready: Callable[[dict[str, Any]], bool]
) -> dict[str, Any] | None:
    async with engine.admin() as client:
        response = await client.get(f"/v1/rules/{key}/stats")
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats if ready(stats) else None


async def _run_items(
    engine: Engine, customer: str, *, until: str | None = None
) -> list[dict[str, Any]]:
    """The run records on the customer's timeline, in order (``[]`` until one is ``until``)."""
    async with engine.admin() as client:
        response = await client.get(f"/v1/customers/{customer}/timeline")
    assert response.status_code == 200, response.text
    items = [i["data"] for i in response.json()["items"] if i["type"] == "run"]
    if until is not None and until not in [i["kind"] for i in items]:
        return []
    return items


async def _counters(
    engine: Engine, name: str, labels: dict[str, str], *, total: float
) -> dict[tuple[tuple[str, str], ...], float] | None:
    """The samples of counter ``name`` with ``labels`` from ``/metrics``, once they add up to
    ``total`` (sorted label pairs -> value)."""
    async with engine.admin() as client:
        response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    found = {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    }
    return found if sum(found.values()) == total else None


async def _deferred(engine: Engine, customer: str) -> dict[str, Any] | None:
    found = await engine.customer(customer)
    active = [r for r in found["runs"] if r["status"] == "active"] if found else []
    if not found or not active:
        return None
    [run] = active
    assert run["step"] == 0  # still on its send step
    [timer] = [t for t in found["timers"] if t["run_id"] == run["run_id"]]
    assert isinstance(timer, dict)
    return timer
