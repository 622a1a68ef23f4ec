"""Anomaly rules over the access log: computed per organization and local day by the scan task.

Each rule yields at most one alert per (rule, user, day), with evidence made of ids, counts and
times only. The rules:

- `volume`: the user opened (viewed, changed or exported) far more distinct patients today than
  they usually do: today > max(ANOMALY_VOLUME_FACTOR x median of their active days over the
  trailing ANOMALY_BASELINE_DAYS + ANOMALY_VOLUME_MARGIN, ANOMALY_VOLUME_FLOOR).
- `same_family`: the user opened a patient whose family name is the user's own last name. Compared
  as blind-index digests (the user's last name hashed the way the patient's family name is):
  nothing is decrypted.
- `after_hours`: the user opened records outside the organization's hours (in its zone).
- `flagged`: the user opened a record flagged VIP or employee (`Patient.access_flag`).
- `failed_logins`: at least ANOMALY_FAILED_LOGINS failed sign-ins for the user's account that day
  (django-axes' failure log).

Patients' digests and flags come through settings.COMPLIANCE_PATIENT_FACTS (compliance sits below
patients). Organization hours: `Organization.settings["compliance"]["hours"]`, in the shape of
healthcrm/opening_hours.py; default Monday to Friday, 07:00 to 19:00.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.module_loading import import_string

from compliance.models import AccessAction, AnomalyRule
from healthcrm.crypto import blind_index, normalize_name
from healthcrm.models import Membership, Organization
from healthcrm.opening_hours import DAYS, Intervals, parse_opening_hours

DEFAULT_HOURS: dict[str, list[list[str]]] = {day: [["07:00", "19:00"]] for day in DAYS[:5]}
OPENED = (AccessAction.VIEW, AccessAction.CHANGE, AccessAction.EXPORT)
PATIENT = "patients.patient:"
MAX_IDS = 50  # evidence lists are capped: the access log has the rest


@dataclass
class Finding:
    rule: str
    user_id: int | None
    subject: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Opened:
    """One user's openings of patients on the day: patient id -> access-log ids, plus the times."""

    label: str
    patients: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    rows: list[tuple[int, datetime]] = field(default_factory=list)


def organization_hours(organization: Organization) -> dict[str, Intervals]:
    raw = ((organization.settings or {}).get("compliance") or {}).get("hours")
    try:
        return parse_opening_hours(raw if raw else DEFAULT_HOURS)
    except ValidationError:  # a bad value in the admin must not stop the scan: the default applies
        return parse_opening_hours(DEFAULT_HOURS)


def _day_bounds(day: date, zone: Any) -> tuple[datetime, datetime]:
    return datetime.combine(day, time.min, tzinfo=zone), datetime.combine(
        day + timedelta(days=1), time.min, tzinfo=zone
    )


_OPENED_ROWS = """
SELECT a.id, a.actor_id, a.actor_label, a.created_at, rec
FROM compliance_accesslog a, unnest(a.records) rec
WHERE a.organization_id = %s AND a.created_at >= %s AND a.created_at < %s
  AND a.actor_id IS NOT NULL AND a.action = ANY(%s) AND rec LIKE 'patients.patient:%%'
ORDER BY a.created_at, a.id
"""

_DAILY_COUNTS = """
SELECT a.actor_id, (a.created_at AT TIME ZONE %s)::date AS day, count(DISTINCT rec)
FROM compliance_accesslog a, unnest(a.records) rec
WHERE a.organization_id = %s AND a.created_at >= %s AND a.created_at < %s
  AND a.actor_id IS NOT NULL AND a.action = ANY(%s) AND rec LIKE 'patients.patient:%%'
GROUP BY 1, 2
"""


def _opened_on(organization: Organization, day: date) -> dict[int, _Opened]:
    start, end = _day_bounds(day, organization.zone)
    opened: dict[int, _Opened] = {}
    with connection.cursor() as cursor:
        cursor.execute(_OPENED_ROWS, [organization.pk, start, end, list(OPENED)])
        for log_id, actor_id, label, at, record in cursor.fetchall():
            pk = record[len(PATIENT) :]
            if not pk.isdigit():
                continue
            user = opened.setdefault(actor_id, _Opened(label))
            user.patients[int(pk)].append(log_id)
            if not user.rows or user.rows[-1][0] != log_id:
                user.rows.append((log_id, at))
    return opened


def _baselines(organization: Organization, day: date, actor_ids: list[int]) -> dict[int, list[int]]:
    """Each user's distinct patients per active day over the trailing window (the day excluded)."""
    if not actor_ids:
        return {}
    start, _ = _day_bounds(day - timedelta(days=settings.ANOMALY_BASELINE_DAYS), organization.zone)
    end, _ = _day_bounds(day, organization.zone)
    counts: dict[int, list[int]] = defaultdict(list)
    with connection.cursor() as cursor:
        cursor.execute(_DAILY_COUNTS, [organization.timezone, organization.pk, start, end, list(OPENED)])
        for actor_id, _day, count in cursor.fetchall():
            counts[actor_id].append(count)
    return counts


def volume_threshold(history: list[int]) -> float:
    median = statistics.median(history) if history else 0
    return max(settings.ANOMALY_VOLUME_FACTOR * median + settings.ANOMALY_VOLUME_MARGIN, settings.ANOMALY_VOLUME_FLOOR)


def _log_ids(opened: _Opened, patient_ids: list[int]) -> list[int]:
    return sorted({log_id for pk in patient_ids for log_id in opened.patients[pk]})[:MAX_IDS]


def rule_volume(organization: Organization, day: date, opened: dict[int, _Opened]) -> list[Finding]:
    history = _baselines(organization, day, list(opened))
    found = []
    for actor_id, user in opened.items():
        count = len(user.patients)
        threshold = volume_threshold(history.get(actor_id, []))
        if count > threshold:
            past = history.get(actor_id, [])
            evidence = {
                "distinct_patients": count,
                "threshold": threshold,
                "baseline_median": statistics.median(past) if past else 0,
                "baseline_active_days": len(past),
                "access_log_ids": [log_id for log_id, _ in user.rows][:MAX_IDS],
            }
            found.append(Finding(AnomalyRule.VOLUME, actor_id, user.label, evidence))
    return found


def _facts(patient_ids: set[int]) -> dict[int, tuple[str | None, str]]:
    if not patient_ids:
        return {}
    find: Callable[..., dict[int, tuple[str | None, str]]] = import_string(settings.COMPLIANCE_PATIENT_FACTS)
    return find(patient_ids=sorted(patient_ids))


def rule_same_family_and_flagged(
    organization: Organization, opened: dict[int, _Opened], facts: dict[int, tuple[str | None, str]]
) -> list[Finding]:
    users = get_user_model().objects.filter(pk__in=list(opened)).only("pk", "last_name")
    digests = {
        user.pk: blind_index(user.last_name, "name", organization.pk)
        for user in users
        if normalize_name(user.last_name or "")
    }
    found = []
    for actor_id, user in opened.items():
        mine = digests.get(actor_id)
        same = sorted(pk for pk in user.patients if mine and facts.get(pk, (None, ""))[0] == mine)
        if same:
            evidence: dict[str, Any] = {"patient_ids": same[:MAX_IDS], "access_log_ids": _log_ids(user, same)}
            found.append(Finding(AnomalyRule.SAME_FAMILY, actor_id, user.label, evidence))
        flagged = sorted(pk for pk in user.patients if facts.get(pk, (None, ""))[1])
        if flagged:
            evidence = {
                "patient_ids": flagged[:MAX_IDS],
                "flags": {str(pk): facts[pk][1] for pk in flagged[:MAX_IDS]},
                "access_log_ids": _log_ids(user, flagged),
            }
            found.append(Finding(AnomalyRule.FLAGGED_RECORD, actor_id, user.label, evidence))
    return found


def _inside(hours: dict[str, Intervals], local: datetime) -> bool:
    minutes = local.hour * 60 + local.minute
    return any(start <= minutes < end for start, end in hours.get(DAYS[local.weekday()], []))


def rule_after_hours(organization: Organization, opened: dict[int, _Opened]) -> list[Finding]:
    hours, zone = organization_hours(organization), organization.zone
    found = []
    for actor_id, user in opened.items():
        outside = [(log_id, at.astimezone(zone)) for log_id, at in user.rows if not _inside(hours, at.astimezone(zone))]
        if outside:
            evidence = {
                "accesses": len(outside),
                "access_log_ids": [log_id for log_id, _ in outside][:MAX_IDS],
                "local_times": [at.strftime("%H:%M") for _, at in outside][:MAX_IDS],
                "zone": organization.timezone,
            }
            found.append(Finding(AnomalyRule.AFTER_HOURS, actor_id, user.label, evidence))
    return found


def rule_failed_logins(organization: Organization, day: date) -> list[Finding]:
    """Failed sign-ins (django-axes' failure log, not tenant data) for this organization's members."""
    from axes.models import AccessFailureLog

    members = {
        username.casefold(): (user_id, username)
        for user_id, username in Membership.objects.filter(organization=organization).values_list(
            "user_id", "user__username"
        )
    }
    if not members:
        return []
    start, end = _day_bounds(day, organization.zone)
    failures: dict[str, list[tuple[datetime, str | None, bool]]] = defaultdict(list)
    rows = AccessFailureLog.objects.filter(attempt_time__gte=start, attempt_time__lt=end).values_list(
        "username", "attempt_time", "ip_address", "locked_out"
    )
    for username, at, ip, locked in rows.order_by("attempt_time"):
        key = (username or "").casefold()
        if key in members:
            failures[key].append((at, ip, locked))
    found = []
    for key, attempts in failures.items():
        if len(attempts) >= settings.ANOMALY_FAILED_LOGINS:
            user_id, username = members[key]
            evidence = {
                "failures": len(attempts),
                "ip_addresses": sorted({ip for _, ip, _ in attempts if ip})[:MAX_IDS],
                "first": attempts[0][0].isoformat(),
                "last": attempts[-1][0].isoformat(),
                "locked_out": any(locked for _, _, locked in attempts),
            }
            found.append(Finding(AnomalyRule.FAILED_LOGINS, user_id, username, evidence))
    return found


def anomalies_find(organization: Organization, day: date) -> list[Finding]:
    """Every rule's findings for the organization's local `day` (run inside its context)."""
    opened = _opened_on(organization, day)
    facts = _facts({pk for user in opened.values() for pk in user.patients})
    return [
        *rule_volume(organization, day, opened),
        *rule_same_family_and_flagged(organization, opened, facts),
        *rule_after_hours(organization, opened),
        *rule_failed_logins(organization, day),
    ]
