"""What to do with a claimed delivery before anything is sent (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from services.messenger.deliveries.claims import ClaimedDelivery
from services.messenger.deliveries.status import Status, run_ended_error
from services.messenger.delivery.templates import TemplateSource
from services.messenger.destinations.models import Destination
from services.messenger.suppressions.rules import Subject, subjects_to_check


@dataclass(frozen=True, slots=True)
class Target:
    """A destination as the sender needs it (a snapshot taken in the claim transaction).
    ``secret`` is ``None`` when no configured key decrypts it."""

    id: str
    url: str
    secret: str | None
    enabled: bool
    disabled_reason: str | None
    rate_limit_per_second: float
    max_concurrency: int

    @classmethod
    def of(cls, row: Destination, *, secret: str | None) -> Target:
        return cls(
            id=row.id,
            url=row.url,
            secret=secret,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            rate_limit_per_second=row.rate_limit_per_second,
            max_concurrency=row.max_concurrency,
        )

    def __repr__(self) -> str:  # never the secret
        return f"Target(id={self.id!r}, url={self.url!r})"


@dataclass(frozen=True, slots=True)
class Send:
    target: Target
    template: TemplateSource | None


@dataclass(frozen=True, slots=True)
class Skip:
    status: Status
    reason: str
    destination_id: str | None


Plan = Send | Skip


def plan(
    claimed: ClaimedDelivery,
    *,
    targets: Mapping[str, Target],
    defaults: Mapping[str, str],
    suppressed: Mapping[Subject, str],
    templates: Mapping[str, TemplateSource],
) -> Plan:
    """Erased → cancelled; its run ended (a cancellation applies) → cancelled; suppressed →
    suppressed; no usable destination → failed; else send (with the managed template named by
    the action, if there is one)."""
    if claimed.payload is None:
        return Skip(Status.CANCELLED, "customer erased before sending", claimed.destination_id)
    if claimed.run_ended is not None:
        return Skip(Status.CANCELLED, run_ended_error(claimed.run_ended), claimed.destination_id)
    for subject in subjects_to_check(claimed.channel, claimed.customer_key, claimed.payload):
        reason = suppressed.get(subject)
        if reason is not None:
            _, kind, _ = subject
            return Skip(
                Status.SUPPRESSED,
                f"{kind.value} suppressed on {claimed.channel} ({reason})",
                claimed.destination_id,
            )
    target = targets.get(claimed.destination_id) if claimed.destination_id else None
    if target is None and claimed.destination_named:
        return Skip(Status.FAILED, f"destination {claimed.destination_id} does not exist", None)
    if target is None:
        default_id = defaults.get(claimed.channel)
        target = targets.get(default_id) if default_id else None
    if target is None:
        return Skip(
            Status.FAILED,
            f"no destination for channel {claimed.channel!r}: create one, or name one in the "
            "rule's send step",
            None,
        )
    if not target.enabled:
        why = f": {target.disabled_reason}" if target.disabled_reason else ""
        return Skip(Status.FAILED, f"destination {target.id} is disabled{why}", target.id)
    if target.secret is None:
        return Skip(
            Status.FAILED,
            f"destination {target.id}'s secret cannot be decrypted with CLM_SECRET_KEY or "
            "CLM_SECRET_KEYS_OLD: set the key it was stored with, then replay",
            target.id,
        )
    template = templates.get(claimed.template) if claimed.template else None
    return Send(target, template)
