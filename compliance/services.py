"""Writes of the compliance app: anomaly alerts (recorded by the scan, reviewed by compliance)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from compliance.anomalies import Finding, anomalies_find
from compliance.models import AnomalyAlert
from healthcrm.models import Membership, Organization
from healthcrm.roles import Role
from healthcrm.services import notify


def _label(user: Any) -> str:
    return (user.get_full_name() or user.get_username())[:150]


def compliance_officer_ids(organization_id: int) -> list[int]:
    return list(
        Membership.objects.filter(
            organization_id=organization_id, role=Role.COMPLIANCE, is_active=True, user__is_active=True
        ).values_list("user_id", flat=True)
    )


@transaction.atomic
def anomaly_alerts_record(*, organization: Organization, day: date, findings: list[Finding]) -> list[AnomalyAlert]:
    """Store each finding once per (rule, user, day): a new one is created, a known one gets the
    day's latest evidence (its review is kept). Compliance officers are told how many are new
    (a count, no names). Returns the new alerts."""
    known = {
        (alert.rule, alert.subject): alert
        for alert in AnomalyAlert.objects.select_for_update().filter(day=day, rule__in={f.rule for f in findings})
    }
    new: list[AnomalyAlert] = []
    for finding in findings:
        alert = known.get((finding.rule, finding.subject[:254]))
        if alert is not None:
            if alert.evidence != finding.evidence:
                alert.evidence = finding.evidence
                alert.save(update_fields=["evidence", "updated_at"])
            continue
        alert = AnomalyAlert(
            rule=finding.rule,
            user_id=finding.user_id,
            subject=finding.subject[:254],
            day=day,
            evidence=finding.evidence,
        )
        alert.full_clean()
        alert.save()
        new.append(alert)
    if new:
        count = len(new)
        notify(
            recipients=compliance_officer_ids(organization.pk),
            kind="anomaly_alert",
            message=f"{count} new anomaly alert{'s' if count != 1 else ''} to review.",
            url=reverse("compliance:anomaly_alerts"),
        )
    return new


def anomaly_scan(*, organization: Organization, day: date) -> list[AnomalyAlert]:
    """Run every rule over the organization's `day` and record what fires (inside its context)."""
    return anomaly_alerts_record(organization=organization, day=day, findings=anomalies_find(organization, day))


@transaction.atomic
def anomaly_alert_review(*, alert: AnomalyAlert, reviewer: Any, outcome: str, note: str = "") -> AnomalyAlert:
    """Record the compliance review of an alert (a later review replaces an earlier one)."""
    alert.reviewed_by = reviewer
    alert.reviewed_by_label = _label(reviewer)
    alert.reviewed_at = timezone.now()
    alert.outcome = outcome
    alert.review_note = note.strip()  # type: ignore[assignment]
    alert.full_clean()
    alert.save()
    return alert


@transaction.atomic
def anomaly_weekly_summary_send(*, organization: Organization, week_start: date) -> int:
    """Tell the organization's compliance officers the week's counts (no names, no ids): a
    notification each, and one email (after commit) with the counts per rule."""
    from compliance.selectors import anomaly_weekly_summary

    summary = anomaly_weekly_summary(week_start=week_start)
    message = (
        f"Anomaly alerts, week of {week_start:%Y-%m-%d}: {summary['total']} raised, "
        f"{summary['unreviewed']} awaiting review."
    )
    url = f"{reverse('compliance:anomaly_summary')}?week={week_start:%Y-%m-%d}"
    officers = compliance_officer_ids(organization.pk)
    sent = notify(recipients=officers, kind="anomaly_summary", message=message, url=url)
    addresses = [
        address
        for address in get_user_model().objects.filter(pk__in=officers).values_list("email", flat=True)
        if address
    ]
    if addresses:
        lines = [message, ""] + [
            f"{row['label']}: {row['total']} ({row['unreviewed']} awaiting review)" for row in summary["rows"]
        ]
        body = "\n".join([*lines, "", f"Details: {settings.PUBLIC_BASE_URL}{url}"])
        subject = f"[{organization.name}] Anomaly alerts, week of {week_start:%Y-%m-%d}"
        transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, addresses))
    return len(sent)
