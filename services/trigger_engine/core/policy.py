"""The send policy: consent, global frequency caps and quiet hours, and one pure decision.

    check_send(policy, traits, sent, channel, *, now, device_timezone=None)
        -> Allow | Defer(until) | Skip(reason)

``traits`` are the customer's profile traits, ``sent`` the customer's send log (channel ->
times of recent sends, see :func:`record_send`), ``now`` the moment the message would leave,
``device_timezone`` the last valid ``context.timezone`` the customer's device sent
(:attr:`.profile.Profile.context_timezone`).
The checks, in order:

1. **Consent** (:mod:`.consent`): on an ``opt_in`` channel the customer must have said yes;
   on an ``opt_out`` channel they must not have said no. Otherwise ``Skip("opted_out")`` or
   ``Skip("no_opt_in")``.
2. **Quiet hours** (:mod:`.quiet_hours`), in the customer's zone (``traits.timezone``, an
   IANA name, else the device's ``context.timezone``; unknown or malformed names count as
   absent, and without either the zone is ``default_timezone``, then UTC):
   inside the window, ``Defer(until)`` with ``until`` the end of the quiet spell. The send
   is decided again then (audience, consent, caps, quiet hours).
3. **Frequency caps**, per channel and customer, over rolling windows: a cap ``{"max": 3,
   "per": "P1D"}`` allows a send at ``t`` only if fewer than 3 sends on that channel were
   logged after ``t - 1 day``. Otherwise ``Skip("frequency_capped")``: a capped message is
   dropped, not postponed (a reminder sent days late is worse than none).

Caps come last so that a message deferred overnight is counted against the morning's
window, not the evening's. The default policy has no caps and no quiet hours; consent
defaults are opt-out for email, push and webhook and opt-in for SMS (express consent, as
TCPA and most SMS regimes require).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .consent import ConsentMode, allows, consent_of
from .durations import Duration, format_duration
from .effects import SkipReason
from .quiet_hours import QuietHours, customer_zone, quiet_until, zone_or_none
from .rules import Channel

#: The longest cap window: bounds the send log kept per customer.
MAX_CAP_WINDOW: Final = timedelta(days=365)

SendLog = dict[str, list[datetime]]
"""channel -> times of the customer's recent sends on it (oldest first)."""


class Cap(BaseModel):
    """At most ``max`` sends per rolling ``per`` window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max: int = Field(ge=0, le=1000, description="0 blocks the channel")
    per: Duration

    @field_validator("per")
    @classmethod
    def _window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("the window must be longer than zero (e.g. PT1H, P1D, P7D)")
        if value > MAX_CAP_WINDOW:
            raise ValueError(f"the window must be at most {format_duration(MAX_CAP_WINDOW)}")
        return value


class ConsentModes(BaseModel):
    """Per channel: ``opt_in`` (send only with a yes) or ``opt_out`` (send unless a no)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: ConsentMode = "opt_out"
    sms: ConsentMode = "opt_in"
    push: ConsentMode = "opt_out"
    webhook: ConsentMode = "opt_out"

    def of(self, channel: str) -> ConsentMode:
        mode: ConsentMode = getattr(self, channel, "opt_in")  # unknown channel: ask first
        return mode


class SendPolicy(BaseModel):
    """What ``PUT /v1/send-policy`` takes; the empty object is the default policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    caps: dict[Channel, list[Cap]] = Field(
        default_factory=dict, description="channel -> caps that must all hold"
    )
    quiet_hours: QuietHours | None = None
    default_timezone: str = Field(
        default="UTC",
        description="IANA zone for customers without a valid traits.timezone or context.timezone",
    )
    consent: ConsentModes = Field(default_factory=ConsentModes)

    @field_validator("caps")
    @classmethod
    def _distinct_windows(cls, value: dict[Channel, list[Cap]]) -> dict[Channel, list[Cap]]:
        for channel, caps in value.items():
            windows = [cap.per for cap in caps]
            if len(set(windows)) != len(windows):
                raise ValueError(f"{channel}: two caps over the same window; keep the smaller")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if zone_or_none(value) is None:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. UTC, Europe/Berlin)")
        return value.strip()

    def caps_for(self, channel: str) -> list[Cap]:
        """The caps of ``channel``, shortest window first."""
        caps = next((caps for name, caps in self.caps.items() if name == channel), [])
        return sorted(caps, key=lambda cap: cap.per)

    def window(self, channel: str) -> timedelta | None:
        """The longest cap window of ``channel`` (how long its sends must be remembered)."""
        return max((cap.per for cap in self.caps_for(channel)), default=None)


NO_POLICY: Final = SendPolicy()
"""No caps, no quiet hours, default consent modes: what ``step`` uses unless told."""


@dataclass(frozen=True)
class Allow:
    kind: Literal["allow"] = "allow"


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: Literal["quiet_hours"] = "quiet_hours"
    kind: Literal["defer"] = "defer"


@dataclass(frozen=True)
class Skip:
    reason: SkipReason
    detail: str = ""
    kind: Literal["skip"] = "skip"


SendDecision = Allow | Defer | Skip


def check_send(
    policy: SendPolicy,
    traits: Mapping[str, object],
    sent: Mapping[str, Sequence[datetime]],
    channel: str,
    *,
    now: datetime,
    device_timezone: str | None = None,
) -> SendDecision:
    """May a message on ``channel`` leave at ``now``? See the module docstring."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    consent = consent_of(traits, channel)
    if not allows(policy.consent.of(channel), consent):
        if consent == "denied":
            return Skip("opted_out", f"the customer opted out of {channel}")
        return Skip("no_opt_in", f"{channel} requires opt-in and the customer has not opted in")
    quiet = policy.quiet_hours
    if quiet is not None and quiet.applies_to(channel):
        zone = customer_zone(traits.get("timezone"), policy.default_timezone, device_timezone)
        until = quiet_until(quiet, zone, now)
        if until is not None:
            return Defer(until)
    times = sent.get(channel, ())
    for cap in policy.caps_for(channel):
        since = now - cap.per
        if sum(1 for t in times if t > since) >= cap.max:
            return Skip(
                "frequency_capped", f"{channel}: {cap.max} per {format_duration(cap.per)} reached"
            )
    return Allow()


def prune(policy: SendPolicy, sent: Mapping[str, Sequence[datetime]], *, now: datetime) -> SendLog:
    """The log without what no cap can count any more (channels without caps: nothing)."""
    kept: SendLog = {}
    for channel, times in sorted(sent.items()):
        window = policy.window(channel)
        if window is None:
            continue
        recent = [t for t in times if t > now - window]
        if recent:
            kept[channel] = recent
    return kept


def record_send(
    policy: SendPolicy, sent: Mapping[str, Sequence[datetime]], channel: str, *, at: datetime
) -> SendLog:
    """The log after a send on ``channel`` at ``at``, pruned."""
    log = {key: list(times) for key, times in sent.items()}
    log[channel] = sorted([*log.get(channel, []), at])
    return prune(policy, log, now=at)


def merge_logs(
    known: Mapping[str, Sequence[datetime]], other: Mapping[str, Sequence[datetime]]
) -> SendLog:
    """Both customers' sends (identify/alias): caps count what either of them received."""
    channels = sorted(set(known) | set(other))
    return {c: sorted({*known.get(c, ()), *other.get(c, ())}) for c in channels}
