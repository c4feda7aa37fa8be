"""Schemathesis over the three OpenAPI documents: no 5xx, and every answer is documented.

Each service runs on a database of its own, since the run calls destructive operations
too (erasing customers, revoking keys, replacing the lifecycle model). Credentials are
valid (the admin token on the ops APIs, a write key on the Tracking API) except where a
negative case leaves them out. A few resources exist before the run (a rule, a customer, a
destination, a delivery, ...), and half the cases of an operation on ``/{id}`` address them,
so the answers about real resources are checked too, not only 404s. Cases are
derandomized: a run is reproducible. ``tests/support/fuzz.py`` holds the checks.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from schemathesis import GenerationMode

from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.messenger.app import create_app as create_messenger
from services.messenger.deliveries.intake import handle_records
from services.trigger_engine.app import create_app as create_engine
from services.trigger_engine.settings import EngineSettings
from shared import topics
from shared.db import create_engine as create_db_engine
from shared.db import session_factory, transaction
from shared.kafka.admin import TopicConfig, ensure_topics
from tests.messenger.messenger_support import make_action, messenger_settings
from tests.support.databases import own_database
from tests.support.fuzz import CONFORMANCE, REJECTION, FuzzReport, boundaries, fuzz
from tests.support.receiver import eventually
from tests.support.services import ADMIN_TOKEN, Infra, RunningService, settings_env, start_service
from tests.trigger_engine.engine_support import event

pytestmark = pytest.mark.filterwarnings(
    # schemathesis' own strategies draw from `random` (a hypothesis deprecation, not ours)
    "ignore::hypothesis.errors.HypothesisDeprecationWarning"
)

#: Cases per operation: generated valid ones, generated invalid ones, and at most this many
#: boundary ones (most operations have fewer; a rule body has about 500).
VALID_CASES = 15
INVALID_CASES = 8
BOUNDARY_CASES = 150
ADMIN = {"HTTPBearer": {"bearer": ADMIN_TOKEN}}


@dataclass(frozen=True)
class Target:
    service: RunningService
    auth: dict[str, dict[str, str]]
    #: path parameter name → the id of a resource that exists
    known: dict[str, str]
    boundary_cases: int = BOUNDARY_CASES


async def _created(service: RunningService, path: str, body: dict[str, Any]) -> dict[str, Any]:
    async with service.admin() as client:
        response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# --- ingest ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def ingest(infra: Infra) -> AsyncIterator[Target]:
    """Ingest on a database of its own. What it accepts goes to clm.events like every
    ingest test's events: customers with the fuzzer's ids, which no other test uses."""
    async with own_database(
        infra.database_url, prefix="clm_fuzz_ingest", package="services.ingest", schema="ingest"
    ) as url:
        settings = IngestSettings(
            **settings_env(infra, database_url=url, storefront_consumer=False)  # type: ignore[arg-type]
        )
        service = await start_service(create_ingest(settings))
        try:
            key = await _created(service, "/v1/write-keys", {"source": "fuzz-shop"})
            # its own key to revoke: the one the Tracking API cases send must stay valid
            doomed = await _created(service, "/v1/write-keys", {"source": "fuzz-doomed"})
            yield Target(
                service,
                auth={**ADMIN, "WriteKey": {"username": key["key"], "password": ""}},
                known={"key_id": doomed["id"]},
                # every accepted event is produced to Kafka (slow), and the seven calls
                # share one message model: fewer boundary cases each
                boundary_cases=50,
            )
        finally:
            await service.stop()


# --- trigger engine --------------------------------------------------------------------------

RULE: dict[str, Any] = {
    "key": "fuzz-cart",
    "name": "Cart reminder",
    "enabled": False,
    "trigger": {"type": "event", "event": "Product Added"},
    "steps": [{"wait": "PT1H"}, {"send": {"channel": "email", "template": "cart_reminder"}}],
    "exit_when": [{"event": "Order Completed"}],
    "reentry": "P7D",
    "goal": {"event": "Order Completed", "within": "P7D"},
}


async def _fold_a_customer(infra: Infra, url: str, customer: str) -> None:
    """Give the database a customer: an engine with its consumer, on a topic of its own (no
    other test's events), folds two events of theirs, then stops. It has no rules, so it
    sends nothing."""
    topic = f"fuzz.events.{uuid.uuid4().hex[:8]}"
    config = TopicConfig(partitions=2)
    await ensure_topics(infra.bootstrap, config, names=(topic,))
    settings = EngineSettings(
        **settings_env(  # type: ignore[arg-type]
            infra,
            database_url=url,
            events_topic=topic,
            handoff_topic=f"{topic}.handoff",
            kafka_topic_partitions=2,
            consumer_group=f"fuzz-engine-{uuid.uuid4().hex[:8]}",
            run_retention=False,
            checkpoint_ms=50,
        )
    )
    service = await start_service(create_engine(settings))
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap, acks="all")
    await producer.start()
    try:
        for item in (
            event(customer, None, call="identify", traits={"email": "ada@example.com"}),
            event(customer, "Product Added", properties={"product_id": "sku-1", "price": 25}),
        ):
            await producer.send_and_wait(topic, item.to_bytes(), key=customer.encode())

        async def folded() -> bool:
            async with service.admin() as client:
                response = await client.get(f"/v1/customers/{customer}/timeline")
            return response.status_code == 200 and len(response.json()["items"]) >= 2

        await eventually(folded, timeout=60)
    finally:
        await producer.stop()
        await service.stop()


@pytest.fixture(scope="module")
async def engine(infra: Infra) -> AsyncIterator[Target]:
    """The ops API alone (no consumer, so nothing it does can send) on a database that
    holds a customer and a rule."""
    async with own_database(infra.database_url, prefix="clm_fuzz_engine") as url:
        customer = f"fuzz-{uuid.uuid4().hex[:8]}"
        await _fold_a_customer(infra, url, customer)
        settings = EngineSettings(
            **settings_env(  # type: ignore[arg-type]
                infra,
                database_url=url,
                run_consumer=False,
                run_retention=False,
                erasure_wait_seconds=0.0,
            )
        )
        service = await start_service(create_engine(settings))
        try:
            await _created(service, "/v1/rules", RULE)
            yield Target(service, auth=ADMIN, known={"key": RULE["key"], "customer_id": customer})
        finally:
            await service.stop()


# --- messenger -------------------------------------------------------------------------------


async def _group_at_end(bootstrap: str, group: str, topic: str) -> None:
    """Commit ``group``'s offsets at the end of ``topic``: a consumer of that group reads
    only what comes after, not the session's earlier records."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        await consumer.commit({tp: await consumer.position(tp) for tp in tps})
    finally:
        await consumer.stop()


async def _loopback(host: str, port: int) -> list[str]:
    """Every destination host is this machine (and nothing listens on the fuzzed ports):
    no test send leaves it."""
    return ["127.0.0.1"]


async def _add_delivery(url: str, customer: str, destination: str) -> None:
    """A delivery, taken in as the clm.actions consumer takes one (not produced to the
    topic: the session's other messengers read it)."""
    db = create_db_engine(url, pool_size=1)
    try:
        async with transaction(session_factory(db)) as session:
            await handle_records(
                session,
                [make_action(customer, channel="webhook", destination=destination)],
                now=datetime.now(UTC),
                first_delay=timedelta(0),
            )
    finally:
        await db.dispose()


@pytest.fixture(scope="module")
async def messenger(infra: Infra) -> AsyncIterator[Target]:
    """A messenger on its own database, its consumer group past every earlier action, with
    a destination, a delivery, a suppression and a template."""
    group = f"fuzz-messenger-{uuid.uuid4().hex[:8]}"
    await _group_at_end(infra.bootstrap, group, topics.ACTIONS)
    async with own_database(
        infra.database_url,
        prefix="clm_fuzz_messenger",
        package="services.messenger",
        schema="messenger",
    ) as url:
        settings = messenger_settings(
            infra,
            database_url=url,
            consumer_group=group,
            delivery_timeout_seconds=2.0,  # a fuzzed IP-literal URL is not resolved: no hang
        )
        service = await start_service(create_messenger(settings, resolver=_loopback))
        try:
            customer = f"fuzz-{uuid.uuid4().hex[:8]}"
            destination = await _created(
                service,
                "/v1/destinations",
                {"channel": "webhook", "url": "http://hooks.fuzz.test:9/in", "enabled": True},
            )
            await _add_delivery(url, customer, destination["id"])
            async with service.admin() as client:
                listed = await client.get("/v1/deliveries", params={"customer_id": customer})
            suppression = await _created(
                service, "/v1/suppressions", {"channel": "email", "customer_id": customer}
            )
            template = await _created(
                service,
                "/v1/templates",
                {"name": "fuzz_welcome", "subject": "Hi {{ customer.id }}"},
            )
            yield Target(
                service,
                auth=ADMIN,
                known={
                    "destination_id": destination["id"],
                    "delivery_id": listed.json()["items"][0]["id"],
                    "suppression_id": suppression["id"],
                    "name": template["name"],
                },
            )
        finally:
            await service.stop()


# --- the runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One way of making cases. ``invalid`` checks more than conformance: a schema-invalid
    case must be rejected. ``boundaries`` does not ask that of its invalid cases: among them
    are type changes pydantic's lax mode accepts by design (``0`` for ``false``, a Unix time
    for a date-time), which must still never crash and be answered as documented."""

    name: str

    async def __call__(self, target: Target) -> FuzzReport:
        url, auth = target.service.url, target.auth
        if self.name == "boundaries":
            call = functools.partial(
                boundaries, url, auth=auth, per_operation=target.boundary_cases, checks=CONFORMANCE
            )
        else:
            valid = self.name == "valid"
            call = functools.partial(
                fuzz,
                url,
                auth=auth,
                mode=GenerationMode.POSITIVE if valid else GenerationMode.NEGATIVE,
                max_examples=VALID_CASES if valid else INVALID_CASES,
                checks=CONFORMANCE if valid else REJECTION,
                known=target.known,
            )
        report = await asyncio.to_thread(call)
        print(report.tally())  # shown with a failure: what each operation answered
        assert report.operations and not report.failures, report.summary()
        return report


RUNS = [pytest.param(Run(name), id=name) for name in ("valid", "invalid", "boundaries")]


@pytest.mark.parametrize("run", RUNS)
async def test_ingest_answers_as_its_openapi_document_says(ingest: Target, run: Run) -> None:
    await run(ingest)


@pytest.mark.parametrize("run", RUNS)
async def test_engine_answers_as_its_openapi_document_says(engine: Target, run: Run) -> None:
    await run(engine)


@pytest.mark.parametrize("run", RUNS)
async def test_messenger_answers_as_its_openapi_document_says(messenger: Target, run: Run) -> None:
    await run(messenger)
