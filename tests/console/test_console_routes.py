"""The console's pages and forms over real services: sign-in, CSRF, every page, and the
editor, backtest, customers, deliveries, destinations, policy and rejected input."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest

from services.console.security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE
from shared.envelope import ActionCancelV1, EventV1
from tests.console.console_support import (
    System,
    csrf_of,
    dead_delivery,
    destination_for,
    rule_form,
    sign_in_with,
    signed_in,
    unique,
)
from tests.messenger.messenger_support import FAST_SCHEDULE, make_action, produce, wait_delivery
from tests.support.receiver import eventually
from tests.support.services import ADMIN_TOKEN
from tests.trigger_engine.engine_support import event
from tests.trigger_engine.engine_support import produce as produce_events

PAGES = [
    "/",
    "/?days=7",
    "/rules",
    "/rules/new",
    "/customers",
    "/customers?q=nobody-by-this-name",
    "/deliveries",
    "/deliveries?status=dead",
    "/destinations",
    "/templates",
    "/suppressions",
    "/send-policy",
    "/sources",
    "/rejected",
    "/help/rules",
]


async def test_pages_send_a_stranger_to_sign_in(stack: System) -> None:
    async with stack.console.client(follow_redirects=False) as client:
        response = await client.get("/rules")
        assert response.status_code == 303
        assert response.headers["location"] == "/sign-in?next=/rules"
        htmx = await client.post("/rules/validate", headers={"HX-Request": "true"})
        assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/sign-in")


async def test_wrong_token_is_refused_with_a_message_on_the_field(stack: System) -> None:
    response = await sign_in_with(stack.console, "adm_wrong", next="/")
    assert response.status_code == 401
    assert 'id="errors-token"' in response.text and "not the admin token" in response.text
    assert SESSION_COOKIE not in response.cookies


async def test_sign_in_form_without_its_token_is_refused(stack: System) -> None:
    async with stack.console.client(follow_redirects=False) as client:
        await client.get("/sign-in")
        response = await client.post("/sign-in", data={"token": ADMIN_TOKEN, CSRF_FIELD: "x"})
    assert response.status_code == 401 and "expired" in response.text
    assert SESSION_COOKIE not in response.cookies


async def test_session_cookie_is_http_only_and_same_site_strict(stack: System) -> None:
    response = await sign_in_with(stack.console, ADMIN_TOKEN, next="/customers")
    assert response.status_code == 303 and response.headers["location"] == "/customers"
    cookie = next(
        h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and ADMIN_TOKEN not in cookie


async def test_sign_in_never_redirects_to_another_site(stack: System) -> None:
    response = await sign_in_with(stack.console, ADMIN_TOKEN, next="//evil.test/x")
    assert response.headers["location"] == "/"


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_renders_for_a_signed_in_person(stack: System, path: str) -> None:
    async with signed_in(stack.console) as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text[-2000:]
    assert "<h1>" in response.text and "Sign out" in response.text
    assert "Content-Security-Policy" in response.headers
    # Every script, style and image is the console's own: nothing from a CDN or any other host
    # (a match on the word would also hit the random CSRF token now and then).
    assert re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", response.text) is None


@pytest.mark.parametrize(
    "path",
    [
        "/rules",
        "/rules/validate",
        "/rules/some-rule/enabled",
        "/rules/some-rule/backtest",
        "/rules/some-rule/delete",
        "/destinations",
        "/destinations/dst_x/test",
        "/suppressions",
        "/send-policy",
        "/sources",
        "/templates",
        "/deliveries/replay",
        "/sign-out",
    ],
)
async def test_a_form_without_the_csrf_token_is_refused(stack: System, path: str) -> None:
    async with signed_in(stack.console) as client:
        refused = await client.post(path, data={"enabled": "false", CSRF_FIELD: "forged"})
        bare = await client.post(path, data={})
        still_in = await client.get("/rules")
    assert refused.status_code == 403 and "expired" in refused.text
    assert bare.status_code == 403
    assert still_in.status_code == 200  # a refused sign-out signs nobody out


async def test_an_unknown_page_is_a_page_that_says_so(stack: System) -> None:
    async with signed_in(stack.console) as client:
        response = await client.get("/no-such-page")
        wrong_method = await client.delete("/rules")
    assert response.status_code == 404 and "No such page" in response.text
    assert wrong_method.status_code == 405 and "<h1>" in wrong_method.text


async def test_sign_out_ends_the_session(stack: System) -> None:
    async with signed_in(stack.console) as client:
        cookie = client.cookies[SESSION_COOKIE]
        out = await client.post("/sign-out", data={CSRF_FIELD: client.csrf})  # type: ignore[attr-defined]
        assert out.status_code == 303 and out.headers["location"].startswith("/sign-in")
        after = await client.get("/rules")
    assert after.status_code == 303
    async with stack.console.client(
        follow_redirects=False, cookies={SESSION_COOKIE: cookie}
    ) as old:
        assert (await old.get("/rules")).status_code == 303


async def test_rule_editor_places_errors_on_their_fields_then_saves(stack: System) -> None:
    key = unique("ct")
    trigger = f"Console Test {uuid.uuid4().hex}"
    bad = rule_form(
        key,
        trigger,
        audience='[{"path": "profile.trait.email", "op": "exists"}]',
        reentry="seven days",
    )
    async with signed_in(stack.console) as client:
        headers = {"HX-Request": "true", CSRF_HEADER: client.csrf}  # type: ignore[attr-defined]
        live = await client.post("/rules/validate", data=bad, headers=headers)
        assert live.status_code == 200
        audience = live.text.split('id="errors-audience"')[1].split("</ul>")[0]
        assert "profile.trait.email" in audience and "profile.traits" in audience
        reentry = live.text.split('id="errors-reentry"')[1].split("</ul>")[0]
        assert "<li>" in reentry
        assert "Not valid yet" in live.text

        refused = await client.post("/rules", data={**bad, CSRF_FIELD: client.csrf})  # type: ignore[attr-defined]
        assert refused.status_code == 422
        assert 'value="seven days"' in refused.text  # what was typed stays

        good = rule_form(
            key, trigger, audience='[{"path": "profile.traits.email", "op": "exists"}]'
        )
        ok = await client.post("/rules/validate", data=good, headers=headers)
        assert "Valid: the engine would accept" in ok.text
        saved = await client.post("/rules", data={**good, CSRF_FIELD: client.csrf})  # type: ignore[attr-defined]
        assert saved.status_code == 303 and saved.headers["location"] == f"/rules/{key}"
        stack.created_rules.append(key)

        listed = await client.get("/rules")
        assert key in listed.text and 'aria-checked="true"' in listed.text
        edited = await client.post(
            f"/rules/{key}",
            data={**good, "name": "Renamed", "editing": key, CSRF_FIELD: client.csrf},  # type: ignore[attr-defined]
        )
        assert edited.status_code == 303
        detail = await client.get(f"/rules/{key}")
    assert "v2" in detail.text and "d-added" in detail.text and "Renamed" in detail.text


async def test_enable_switch_turns_a_rule_off(stack: System) -> None:
    key = unique("ct")
    async with signed_in(stack.console) as client:
        form = rule_form(key, f"Console Test {uuid.uuid4().hex}")
        await client.post("/rules", data={**form, CSRF_FIELD: client.csrf})  # type: ignore[attr-defined]
        stack.created_rules.append(key)
        switched = await client.post(
            f"/rules/{key}/enabled",
            data={"enabled": "false"},
            headers={"HX-Request": "true", CSRF_HEADER: client.csrf},  # type: ignore[attr-defined]
        )
    assert switched.status_code == 200 and 'aria-checked="false"' in switched.text
    async with stack.engine.admin() as engine:
        assert (await engine.get(f"/v1/rules/{key}")).json()["enabled"] is False


async def customer_with_events(stack: System, trigger: str) -> str:
    customer = unique("ct-cust")
    email = f"{customer}@example.com"
    events: list[EventV1] = [
        event(customer, None, call="identify", traits={"email": email, "phone": "+4915550001"}),
        event(customer, trigger, properties={"price": 30}),
    ]
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=stack.engine.infra.bootstrap, acks="all")
    await producer.start()
    try:
        await produce_events(producer, *events)
    finally:
        await producer.stop()

    async def stored() -> bool:
        async with stack.engine.admin() as engine:
            timeline = await engine.get(f"/v1/customers/{customer}/timeline")
        return timeline.status_code == 200 and len(timeline.json()["items"]) >= 2

    await eventually(stored, timeout=30)
    return customer


async def test_backtest_shows_the_sends_per_day_and_who_they_reach(stack: System) -> None:
    key = unique("ct")
    trigger = f"Console Test {uuid.uuid4().hex}"
    customer = await customer_with_events(stack, trigger)
    async with signed_in(stack.console) as client:
        form = rule_form(key, trigger, enabled="")
        await client.post("/rules", data={**form, CSRF_FIELD: client.csrf})  # type: ignore[attr-defined]
        stack.created_rules.append(key)
        from datetime import UTC, datetime, timedelta

        today = datetime.now(UTC).date()
        result = await client.post(
            f"/rules/{key}/backtest",
            data={"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()},
            headers={"HX-Request": "true", CSRF_HEADER: client.csrf},  # type: ignore[attr-defined]
        )
        wrong = await client.post(
            f"/rules/{key}/backtest",
            data={"from": today.isoformat(), "to": "yesterday"},
            headers={"HX-Request": "true", CSRF_HEADER: client.csrf},  # type: ignore[attr-defined]
        )
    assert result.status_code == 200
    assert "Would-be sends per day" in result.text and "<rect" in result.text
    assert customer in result.text
    assert "YYYY-MM-DD" in wrong.text


async def test_customer_search_by_email_and_profile_timeline(stack: System) -> None:
    trigger = f"Console Test {uuid.uuid4().hex}"
    customer = await customer_with_events(stack, trigger)
    async with signed_in(stack.console) as client:
        by_email = await client.get("/customers", params={"q": customer.upper() + "@EXAMPLE"})
        by_id = await client.get("/customers", params={"q": customer[:-2]})
        nobody = await client.get("/customers", params={"q": "zz-nobody-" + uuid.uuid4().hex})
        profile = await client.get(f"/customers/{customer}")
        missing = await client.get("/customers/nobody-" + uuid.uuid4().hex)
    assert f"/customers/{customer}" in by_email.text
    assert f"/customers/{customer}" in by_id.text
    assert "Nobody matches" in nobody.text
    assert profile.status_code == 200
    assert trigger in profile.text and f"{customer}@example.com" in profile.text
    assert missing.status_code == 404 and "Search" in missing.text


async def test_dead_delivery_is_listed_and_replayed(stack: System) -> None:
    hook = stack.receiver.hook(*[500] * len(FAST_SCHEDULE))
    async with signed_in(stack.console) as client:
        created = await client.post(
            "/destinations",
            data={
                "channel": "push",
                "url": hook.url,
                "secret": hook.secret,
                "name": "console test",
                CSRF_FIELD: client.csrf,  # type: ignore[attr-defined]
            },
        )
        assert created.status_code == 200 and "shown only now" in created.text
        async with stack.messenger.admin() as messenger:
            listed = (await messenger.get("/v1/destinations", params={"channel": "push"})).json()
        destination = next(d["id"] for d in listed["items"] if d["url"] == hook.url)
        stack.created_destinations.append(destination)
        action_id, dead = await dead_delivery(stack, destination)
        page = await client.get("/deliveries", params={"status": "dead"})
        assert dead["id"] in page.text and "Replay all dead" in page.text
        replayed = await client.post(
            f"/deliveries/{dead['id']}/replay",
            data={CSRF_FIELD: client.csrf, "back": "/deliveries?status=dead"},  # type: ignore[attr-defined]
        )
        assert replayed.status_code == 303
        delivered = await wait_delivery(stack.messenger, action_id, "delivered")
        assert delivered["attempt_count"] > dead["attempt_count"]
        flash = await client.get("/deliveries?status=dead")
        assert "Replay queued" in flash.text
        bulk = await client.post(
            "/deliveries/replay",
            data={"status": "dead", "destination_id": destination, CSRF_FIELD: client.csrf},  # type: ignore[attr-defined]
        )
        assert bulk.status_code == 303
        after = await client.get(bulk.headers["location"])
    assert "Replayed 0 deliveries (dead)" in after.text


async def test_deliveries_cancelled_by_their_run_can_be_replayed_in_bulk(stack: System) -> None:
    """A cancellation is the engine's judgement; an operator may still send them."""
    hook = stack.receiver.hook(*[500] * len(FAST_SCHEDULE))
    destination = await destination_for(stack, hook, "push")
    run = unique("run")
    action = make_action(unique("cancelled"), channel="push", destination=destination)
    action = action.model_copy(update={"run_id": run})
    await produce(stack.engine.infra, action)
    await wait_delivery(stack.messenger, action.action_id, "retrying", timeout=30)
    cancel = ActionCancelV1(
        cancel_id=f"cancel_{run}",
        run_id=run,
        customer_key=action.customer_key,
        rule="cart-abandon",
        reason="exit_when",
        ended_at=datetime.now(UTC),
    )
    await produce(stack.engine.infra, cancel)
    cancelled = await wait_delivery(stack.messenger, action.action_id, "cancelled", timeout=30)
    async with signed_in(stack.console) as client:
        page = await client.get("/deliveries", params={"status": "cancelled"})
        assert cancelled["id"] in page.text and "Replay all cancelled" in page.text
        bulk = await client.post(
            "/deliveries/replay",
            data={"status": "cancelled", "destination_id": destination, CSRF_FIELD: client.csrf},  # type: ignore[attr-defined]
        )
        assert bulk.status_code == 303
        after = await client.get(bulk.headers["location"])
    assert "Replayed 1 delivery (cancelled)" in after.text


async def test_destination_test_send_reports_the_receivers_answer(stack: System) -> None:
    hook = stack.receiver.hook()
    destination = await destination_for(stack, hook, "webhook")
    async with signed_in(stack.console) as client:
        result = await client.post(
            f"/destinations/{destination}/test",
            headers={"HX-Request": "true", CSRF_HEADER: client.csrf},  # type: ignore[attr-defined]
        )
        page = await client.get("/destinations")
    assert "Answered 200" in result.text
    assert hook.hits and hook.hits[-1].verified
    assert hook.hits[-1].body["type"] == "destination.test"
    assert destination in page.text


async def test_send_policy_error_is_shown_on_its_field(stack: System) -> None:
    async with signed_in(stack.console) as client:
        page = await client.get("/send-policy")
        response = await client.post(
            "/send-policy",
            data={
                CSRF_FIELD: csrf_of(page.text),
                "default_timezone": "Mars/Olympus_Mons",
                "caps": "",
                "consent_email": "opt_out",
                "consent_sms": "opt_in",
                "consent_push": "opt_out",
                "consent_webhook": "opt_out",
            },
        )
    assert response.status_code == 422
    field = response.text.split('id="errors-default_timezone"')[1].split("</ul>")[0]
    assert "Mars/Olympus_Mons" in field


async def test_rejected_input_lists_every_reason_and_the_body(stack: System) -> None:
    source = unique("ct-shop")
    async with signed_in(stack.console) as client:
        created = await client.post("/sources", data={"source": source, CSRF_FIELD: client.csrf})  # type: ignore[attr-defined]
        key = created.text.split('<pre class="secret">')[1].split("</pre>")[0]
        async with stack.ingest.client() as ingest:
            refused = await ingest.post(
                "/v1/track", json={"event": "", "properties": []}, auth=(key, "")
            )
        assert refused.status_code == 400
        page = await client.get("/rejected", params={"source": source})
    assert source in page.text and "invalid_message" in page.text
    reasons = page.text.split('<ul class="reasons">')[1].split("</ul>")[0]
    assert "event must be a non-empty string" in reasons
    assert "properties must be an object" in reasons  # every error, not only the first
    assert "&#34;properties&#34;:[]" in page.text  # the body as it came


async def test_suppression_is_added_and_lifted(stack: System) -> None:
    who = unique("ct-supp")
    async with signed_in(stack.console) as client:
        added = await client.post(
            "/suppressions",
            data={"channel": "sms", "kind": "customer_id", "who": who, CSRF_FIELD: client.csrf},  # type: ignore[attr-defined]
        )
        assert added.status_code == 303
        page = await client.get("/suppressions?channel=sms")
        assert who in page.text
        row = re.search(rf"<td>{who}</td>.*?/suppressions/([0-9a-f-]+)/delete", page.text, re.S)
        assert row, page.text
        suppression = row.group(1)
        lifted = await client.post(
            f"/suppressions/{suppression}/delete",
            data={CSRF_FIELD: client.csrf},  # type: ignore[attr-defined]
        )
        assert lifted.status_code == 303
        empty = await client.post(
            "/suppressions", data={"channel": "sms", "who": " ", CSRF_FIELD: client.csrf}
        )  # type: ignore[attr-defined]
        after = await client.get("/suppressions?channel=sms")
    assert who not in after.text
    assert empty.status_code == 422 and 'id="errors-who"' in empty.text


async def test_template_preview_for_a_sample_customer(stack: System) -> None:
    name = unique("ct_tpl")
    async with signed_in(stack.console) as client:
        created = await client.post(
            "/templates",
            data={
                "name": name,
                "subject": "Hi {{ customer.traits.first_name }}",
                CSRF_FIELD: client.csrf,
            },  # type: ignore[attr-defined]
        )
        assert created.status_code == 303
        preview = await client.post(
            f"/templates/{name}/preview",
            data={},
            headers={"HX-Request": "true", CSRF_HEADER: client.csrf},  # type: ignore[attr-defined]
        )
        broken = await client.post(
            "/templates",
            data={"name": unique("ct_bad"), "text": "{% if %}", CSRF_FIELD: client.csrf},
        )  # type: ignore[attr-defined]
    async with stack.messenger.admin() as messenger:
        await messenger.delete(f"/v1/templates/{name}")
    assert "Hi Ada" in preview.text and "sample customer" in preview.text
    assert broken.status_code == 422 and 'id="errors-text"' in broken.text


async def test_replay_of_an_unknown_delivery_says_so_and_stays_on_this_site(
    stack: System,
) -> None:
    async with signed_in(stack.console) as client:
        response = await client.post(
            f"/deliveries/{uuid.uuid4()}/replay",
            data={CSRF_FIELD: client.csrf, "back": "//evil.test/x"},  # type: ignore[attr-defined]
        )
        page = await client.get(response.headers["location"])
    assert response.status_code == 303 and response.headers["location"] == "/deliveries"
    assert "Not replayed: no delivery with id" in page.text
