"""Etiquette: quiet hours (DST-safe), the patient's window and zone, channel choice, frequency
caps, SMS keywords, and retry backoff.

Pure functions but one (cap_free_at reads the outbox): the materializers, the delivery engine and
the webhook call them.
"""

from __future__ import annotations

import random
import zoneinfo
from datetime import UTC, datetime, time, timedelta
from typing import Any

from engagement.models import (
    MARKETING_RULE_KINDS,
    OPT_IN_KINDS,
    ChannelSettings,
    ConsentKind,
    ConsentStatus,
    OutboundMessage,
    OutboxStatus,
)

# Carrier / CTIA keywords, matched on the whole message, any case, surrounding spaces ignored.
STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_KEYWORDS = frozenset({"START", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP"})
CONFIRM_KEYWORDS = frozenset({"C", "YES"})
RESCHEDULE_KEYWORDS = frozenset({"R"})


def keyword_of(body: str) -> str:
    """'stop' -> 'STOP'; the category of the message's single keyword, or '' for free text."""
    word = (body or "").strip().upper()
    if word in STOP_KEYWORDS:
        return "STOP"
    if word in START_KEYWORDS:
        return "START"
    if word in HELP_KEYWORDS:
        return "HELP"
    if word in CONFIRM_KEYWORDS:
        return "CONFIRM"
    if word in RESCHEDULE_KEYWORDS:
        return "RESCHEDULE"
    return ""


def _local(day: datetime, at: time, zone: zoneinfo.ZoneInfo) -> datetime:
    """The instant `at` o'clock on `day`'s date in `zone` (PEP 495, fold=0): a wall time skipped by
    a spring-forward (02:30) lands after the gap (03:30 new time); a repeated one (fall-back) takes
    its first occurrence."""
    return datetime.combine(day.date(), at).replace(tzinfo=zone, fold=0)


def next_allowed(when: datetime, zone: zoneinfo.ZoneInfo, start: time, end: time) -> datetime:
    """`when` if it falls inside the daily sending window [start, end) local time, else the next
    window's start (UTC). Windows that wrap midnight (start > end) are supported."""
    local = when.astimezone(zone)
    t = local.timetz().replace(tzinfo=None)
    if start == end:
        return when  # no quiet hours
    inside = (start <= t < end) if start < end else (t >= start or t < end)
    if inside:
        return when
    if start < end and t < start:
        candidate = _local(local, start, zone)
    elif start < end:
        candidate = _local(local + timedelta(days=1), start, zone)
    else:  # wrapping window, we are in [end, start)
        candidate = _local(local, start, zone)
    return candidate.astimezone(UTC)


def backoff(attempt: int, *, base: float = 30.0, cap: float = 3600.0, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with "equal jitter": uniform(c/2, c), c = min(cap, base * 2**(attempt-1))."""
    ceiling = min(cap, base * (2 ** max(attempt - 1, 0)))
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


def sending_window(patient: Any, settings_: ChannelSettings) -> tuple[time, time]:
    """The patient's contact window when they gave one, else the organization's quiet hours."""
    if patient.contact_window_start and patient.contact_window_end:
        return patient.contact_window_start, patient.contact_window_end
    return settings_.quiet_start, settings_.quiet_end


def patient_zone(patient: Any, organization: Any) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(patient.timezone) if patient.timezone else organization.zone


def choose_channel(
    patient: Any, consents: dict[tuple[int, str], str], settings_: ChannelSettings, *, opt_in: bool = False
) -> str | None:
    """The channel to reach the patient by: their preference first, SMS before email; a channel
    they opted out of (or have no address for) falls back to the other; None when neither works."""
    preference = patient.preferred_channel
    if preference == "none":
        return None  # the patient asked for no outreach
    order = ["email", "sms"] if preference == "email" else ["sms", "email"]
    for channel in order:
        status = consents.get((patient.pk, channel))
        if status == ConsentStatus.OPTED_OUT or (opt_in and status != ConsentStatus.OPTED_IN):
            continue
        if channel == "sms" and settings_.sms_enabled and patient.phone_mobile:
            return "sms"
        if channel == "email" and settings_.email_enabled and patient.email:
            return "email"
    return None


def consent_problem(message: OutboundMessage, consents: dict[tuple[int, str], str]) -> str:
    """Why the patient's consent stops this message now ("" when it may go), at send time.

    `consents` holds the consents in force ({(patient id, kind): status}, `selectors.consents_for`):
    an expired consent is absent. Every message needs its channel not opted out; campaigns and daily
    reminders need an opt-in on the channel; campaigns (marketing, education) also the marketing kind.
    """
    channel = consents.get((message.patient_id, message.channel))
    if channel == ConsentStatus.OPTED_OUT:
        return "The patient opted out of this channel."
    rule_kind = message.rule.kind if message.rule_id is not None and message.rule is not None else ""
    if rule_kind in OPT_IN_KINDS and channel != ConsentStatus.OPTED_IN:
        return "No opt-in in force on this channel."
    if rule_kind in MARKETING_RULE_KINDS and consents.get((message.patient_id, ConsentKind.MARKETING)) != (
        ConsentStatus.OPTED_IN
    ):
        return "No consent in force to marketing and education campaigns."
    return ""


def cap_free_at(message: OutboundMessage, settings_: ChannelSettings, now: datetime) -> datetime | None:
    """When a non-urgent message may go under the frequency caps (None: now)."""
    counted = OutboundMessage.objects.filter(
        patient_id=message.patient_id,
        is_urgent=False,
        status__in=(OutboxStatus.SENDING, OutboxStatus.SENT, OutboxStatus.DELIVERED),
    ).exclude(pk=message.pk)
    for window, cap in ((timedelta(days=1), settings_.cap_per_day), (timedelta(days=7), settings_.cap_per_week)):
        recent = counted.filter(claimed_at__gt=now - window)
        if cap and recent.count() >= cap:
            # The oldest message in the window leaves it first... if the cap is 1; in general the
            # (count - cap + 1)-th oldest. Ordering by claimed_at gives that one.
            oldest = recent.order_by("claimed_at").values_list("claimed_at", flat=True)[recent.count() - cap]
            return oldest + window + timedelta(seconds=1)
    return None
