"""The official Segment client, pointed at ingest, delivers to clm.events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import segment.analytics as segment_analytics

from shared import topics
from shared.envelope import EventV1, decode_event
from tests.ingest.conftest import Source
from tests.support.kafka import collect
from tests.support.services import Infra, RunningService


def _send_with_segment_client(url: str, write_key: str, customer: str) -> list[str]:
    errors: list[str] = []
    client = segment_analytics.Client(
        write_key=write_key,
        host=url,
        sync_mode=False,  # the batching background thread, as a storefront runs it
        max_retries=1,
        on_error=lambda error, _items: errors.append(repr(error)),
    )
    client.identify(customer, {"email": f"{customer}@example.com", "name": "Ada"})
    client.track(
        customer,
        "Product Added",
        {"product_id": "sku-1", "price": 25.0, "quantity": 1},
        timestamp=datetime.now(UTC) - timedelta(minutes=5),
    )
    client.page(customer, category="Docs", name="Pricing", properties={"url": "/pricing"})
    client.track(
        anonymous_id=f"anon-{customer}", event="Product Viewed", properties={"product_id": "p"}
    )
    client.flush()
    client.shutdown()
    return errors


async def test_segment_client_delivers_identify_track_page_to_clm_events(
    infra: Infra, ingest: RunningService, source: Source
) -> None:
    customer = f"user-{uuid.uuid4().hex[:8]}"
    errors = await asyncio.to_thread(_send_with_segment_client, ingest.url, source.key, customer)
    assert errors == []

    events = await collect(
        infra.bootstrap,
        topics.EVENTS,
        decode=decode_event,
        match=lambda e: e.source == source.name,
        count=4,
    )
    by_call = {(e.call, e.event): e for e in events}
    identify = by_call[("identify", None)]
    assert identify.customer_key == customer
    assert identify.traits["email"] == f"{customer}@example.com"
    added = by_call[("track", "Product Added")]
    assert added.properties["price"] == 25.0
    assert added.user_id == customer
    # the client set the event 5 minutes in the past: skew correction keeps it there
    assert timedelta(minutes=4) < added.received_at - added.timestamp < timedelta(minutes=6)
    assert by_call[("page", "Pricing")].properties["url"] == "/pricing"
    anonymous = by_call[("track", "Product Viewed")]
    assert anonymous.customer_key == f"anon-{customer}"
    assert anonymous.user_id is None
    assert all(isinstance(e, EventV1) for e in events)
