"""``Event`` (what the trigger engine decodes) is ``EventV1`` (what ingest produces)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec
import pytest

from shared.envelope import Event, EventV1, decode_event


def test_event_has_exactly_the_fields_of_event_v1_with_the_same_defaults() -> None:
    fields = {field.name: field for field in msgspec.structs.fields(Event)}
    assert list(fields) == list(EventV1.model_fields)
    for name, model_field in EventV1.model_fields.items():
        field = fields[name]
        assert field.required == model_field.is_required(), name
        if not field.required:
            default = (
                field.default_factory() if field.default is msgspec.NODEFAULT else field.default
            )
            assert default == model_field.get_default(call_default_factory=True), name


def _record(**fields: object) -> EventV1:
    now = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    return EventV1(
        event_id=uuid.uuid4(),
        source="shop",
        message_id="m-1",
        customer_key="user-1",
        call="track",
        event="Product Added",
        properties={"product_id": "p1", "price": 12.5},
        context={"timezone": "Europe/Berlin"},
        timestamp=now,
        received_at=now,
        **fields,  # type: ignore[arg-type]
    )


def test_a_record_reads_back_field_for_field() -> None:
    record = _record(user_id="user-1", traits={"email": "a@example.com"})
    event = decode_event(record.to_bytes())
    assert event.event_id == str(record.event_id)
    for name in EventV1.model_fields:
        if name != "event_id":
            assert getattr(event, name) == getattr(record, name), name
    assert EventV1.model_validate_json(event.to_bytes()) == record


def test_a_record_that_is_not_an_event_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_event(b'{"type": "action", "version": 1}')
    with pytest.raises(msgspec.ValidationError):
        decode_event(_record().to_bytes().replace(b'"track"', b'"teleport"'))
