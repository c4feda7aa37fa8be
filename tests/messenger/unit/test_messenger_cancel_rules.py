"""Run cancellations, the pure parts: the envelope, the rows intake writes, and the plan of a
claimed delivery whose run ended."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from services.messenger.deliveries.cancels import cancelled_row
from services.messenger.deliveries.claims import ClaimedDelivery
from services.messenger.deliveries.intake import delivery_row
from services.messenger.deliveries.status import REPLAYABLE, Status, run_ended_error
from services.messenger.dispatch.plan import Send, Skip, Target, plan
from shared.envelope import ActionCancelV1, ActionV1, ErasureV1, decode_action_topic

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
CANCEL = ActionCancelV1(
    cancel_id="cancel_1",
    run_id="run-1",
    customer_key="user-1",
    rule="cart-abandon",
    reason="exit_when",
    ended_at=NOW - timedelta(minutes=5),
)


def _action(**fields: Any) -> ActionV1:
    values: dict[str, Any] = {
        "action_id": "act_1",
        "customer_key": "user-1",
        "channel": "email",
        "data": {"action_id": "act_1", "rule": "cart-abandon", "template": "cart_reminder"},
        "created_at": NOW,
        "run_id": "run-1",
        **fields,
    }
    return ActionV1(**values)


def test_clm_actions_carries_actions_cancellations_and_erasures() -> None:
    assert decode_action_topic(CANCEL.to_bytes()) == CANCEL
    assert decode_action_topic(_action().to_bytes()) == _action()
    erasure = ErasureV1(customer_key="user-1", erasure_id=uuid.uuid4(), requested_at=NOW)
    assert decode_action_topic(erasure.to_bytes()) == erasure
    # An action of an engine from before cancellations names no run: it still decodes.
    older = _action().model_dump(mode="json")
    del older["run_id"]
    assert decode_action_topic(ActionV1(**older).to_bytes()).run_id is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "action.recall", "version": 1, "run_id": "run-1"}',
        b'{"type": "action.cancel", "version": 1, "customer_key": "user-1"}',
        b'{"type": "action.cancel", "version": 2, "cancel_id": "c", "run_id": "r", '
        b'"customer_key": "u", "rule": "x", "reason": "exit_when", '
        b'"ended_at": "2026-12-08T12:00:00Z"}',
    ],
    ids=["unknown type", "missing fields", "unknown version"],
)
def test_an_unknown_or_incomplete_record_is_refused(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        decode_action_topic(raw)


def test_an_action_of_a_cancelled_run_is_stored_cancelled_with_the_reason() -> None:
    kwargs: dict[str, Any] = {
        "default_destination": None,
        "now": NOW,
        "first_delay": timedelta(seconds=1),
    }
    live = delivery_row(_action(), **kwargs)
    assert (live["status"], live["next_attempt_at"], live["run_id"]) == (
        "pending",
        NOW + timedelta(seconds=1),
        "run-1",
    )
    assert live["last_error"] is None
    ended = delivery_row(_action(), run_ended="audience", **kwargs)
    assert (ended["status"], ended["next_attempt_at"]) == ("cancelled", None)
    assert (
        ended["last_error"] == run_ended_error("audience") == "run ended (audience) before sending"
    )
    assert set(ended) == set(live)  # one multi-row INSERT takes both


def test_a_cancellation_is_remembered_as_received() -> None:
    assert cancelled_row(CANCEL, now=NOW) == {
        "run_id": "run-1",
        "cancel_id": "cancel_1",
        "customer_key": "user-1",
        "rule": "cart-abandon",
        "reason": "exit_when",
        "ended_at": NOW - timedelta(minutes=5),
        "received_at": NOW,
    }


def _claimed(**kw: Any) -> ClaimedDelivery:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "action_id": "act_1",
        "customer_key": "user-1",
        "channel": "email",
        "destination_id": "dst_a",
        "destination_named": True,
        "template": None,
        "payload": {"customer": {"id": "user-1"}},
        "action_created_at": NOW,
        "attempt_count": 1,
        "round": 1,
        "round_attempts": 1,
        "claim_token": uuid.uuid4(),
        **kw,
    }
    return ClaimedDelivery(**values)


def test_a_claimed_delivery_of_an_ended_run_is_cancelled_not_sent() -> None:
    target = Target("dst_a", "https://x.example.com/", "whsec_x", True, None, 10, 10)
    base: dict[str, Any] = {
        "targets": {"dst_a": target},
        "defaults": {},
        "suppressed": {},
        "templates": {},
    }
    assert plan(_claimed(), **base) == Send(target, None)
    ended = plan(_claimed(run_ended="exit_when"), **base)
    assert ended == Skip(Status.CANCELLED, "run ended (exit_when) before sending", "dst_a")
    erased = plan(_claimed(run_ended="exit_when", payload=None), **base)
    assert isinstance(erased, Skip) and erased.reason == "customer erased before sending"


def test_a_cancelled_delivery_is_replayable() -> None:
    assert Status.CANCELLED in REPLAYABLE
