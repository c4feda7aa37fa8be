"""SSRF guard: refused when a destination is saved, and again at every connection (DNS
rebinding), redirects never followed. DNS is played by a resolver the test controls."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.messenger.messenger_support import (
    MessengerFactory,
    create_destination,
    customer_id,
    make_action,
    produce,
    wait_delivery,
)
from tests.support.receiver import Receiver, new_secret
from tests.support.services import Infra, RunningService


class FakeDns:
    """Answers what the test says; anything else does not resolve."""

    def __init__(self, **records: list[str]) -> None:
        self.records = {name.replace("_", "."): ips for name, ips in records.items()}

    async def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.records:
            raise OSError(f"{host} does not resolve")
        return list(self.records[host])


@pytest.fixture
async def strict(start_messenger: MessengerFactory) -> tuple[RunningService, FakeDns]:
    """A messenger outside dev mode (private destinations refused)."""
    dns = FakeDns(
        shop_example_com=["93.184.216.34"],
        mixed_example_com=["93.184.216.34", "10.0.0.7"],
        rebind_example_com=["192.168.1.20"],
        metadata_example_com=["169.254.169.254"],
    )
    service = await start_messenger(
        dev_mode=False,
        allow_private_destinations=False,
        secret_key="ssrf-test-key-" + "k" * 32,
        resolver=dns,
    )
    return service, dns


REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/hook",
    "http://192.168.0.10/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://localhost:8000/hook",
    "http://printer.local/hook",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://intranet/hook",
    "http://rebind.example.com/hook",  # resolves to a private address
    "http://mixed.example.com/hook",  # one private address among public ones
    "http://metadata.example.com/hook",
    "ftp://shop.example.com/hook",
    "file:///etc/passwd",
    "http://user:pass@shop.example.com/hook",
    "http://nowhere.example.com/hook",  # does not resolve
]


async def test_unsafe_destination_urls_are_refused_when_saved(
    strict: tuple[RunningService, FakeDns],
) -> None:
    service, _ = strict
    accepted = []
    async with service.admin() as client:
        for url in REFUSED:
            response = await client.post(
                "/v1/destinations", json={"channel": "email", "url": url, "default": False}
            )
            if response.status_code != 422:
                accepted.append((url, response.status_code))
            elif "://" in url and url.startswith("http"):
                assert response.json()["code"] in {
                    "unsafe_destination",
                    "unresolvable_destination",
                }, url
        public = await client.post(
            "/v1/destinations",
            json={"channel": "email", "url": "https://shop.example.com/hook", "default": False},
        )
        assert public.status_code == 201, public.text
        assert (await client.delete(f"/v1/destinations/{public.json()['id']}")).status_code == 204
    assert accepted == []


async def test_metadata_addresses_are_refused_even_when_private_ones_are_allowed(
    messenger: RunningService,
) -> None:
    async with messenger.admin() as client:
        for url in ("http://169.254.169.254/latest/", "http://[fd00:ec2::254]/"):
            response = await client.post("/v1/destinations", json={"channel": "sms", "url": url})
            assert response.status_code == 422, response.text


async def test_a_name_rebound_to_a_private_address_after_saving_is_refused_at_connect(
    infra: Infra, receiver: Receiver, strict: tuple[RunningService, FakeDns]
) -> None:
    service, dns = strict
    hook = receiver.hook()
    port = urlsplit(hook.url).port
    async with service.admin() as client:
        response = await client.post(
            "/v1/destinations",
            json={
                "channel": "email",
                "url": f"http://shop.example.com:{port}/hooks/{hook.name}",
                "secret": hook.secret,
                "default": False,
            },
        )
    assert response.status_code == 201, response.text
    dns.records["shop.example.com"] = ["127.0.0.1"]  # the attacker's DNS answers differently now
    action = make_action(customer_id(), destination=response.json()["id"])
    await produce(infra, action)

    failed = await wait_delivery(service, action.action_id, "failed")

    (attempt,) = failed["attempts"]
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("unsafe_destination")
    assert hook.hits == []


async def test_the_connection_goes_to_the_checked_address_with_the_real_host_name(
    infra: Infra, receiver: Receiver, start_messenger: MessengerFactory
) -> None:
    hook = receiver.hook()
    port = urlsplit(hook.url).port
    dns = FakeDns(provider_example_com=["127.0.0.1"])
    service = await start_messenger(resolver=dns)  # private allowed: 127.0.0.1 is fine
    url = f"http://provider.example.com:{port}/hooks/{hook.name}"
    dest = await create_destination(service, hook, url=url)
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)

    await wait_delivery(service, action.action_id, "delivered")
    (hit,) = hook.for_action(action.action_id)
    assert hit.headers["host"] == f"provider.example.com:{port}"
    assert hit.verified


async def test_redirects_are_not_followed(
    infra: Infra, receiver: Receiver, messenger: RunningService
) -> None:
    target = receiver.hook()
    redirecting = target.url.replace("/hooks/", "/moved/")
    dest = await create_destination(messenger, target, url=redirecting, secret=new_secret())
    action = make_action(customer_id(), destination=dest["id"])
    await produce(infra, action)

    failed = await wait_delivery(messenger, action.action_id, "failed")

    assert failed["last_status_code"] == 302
    assert "redirects are not followed" in failed["last_error"]
    assert target.hits == []
