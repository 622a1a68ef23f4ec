"""Outreach's subscriptions to events of other apps (connected in EngagementConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver
from django.utils import timezone

from patients.care.timeline import TimelineEntry, register_timeline_source
from patients.signals import care_plan_updated


@receiver(care_plan_updated, dispatch_uid="engagement.care_plan_notice")
def care_plan_notice(
    sender: Any, organization_id: int, patient_id: int, care_plan_id: int, change: str, **kwargs: Any
) -> None:
    """ "Your care plan was updated": at most one notice per plan a day (the outbox key's slot).

    The signal arrives after the change committed, so this opens its own organization context.
    The notice itself carries no detail of the change (SMS carry the minimum).
    """
    from engagement.services import notice_enqueue
    from healthcrm.models import Organization
    from healthcrm.tenancy import organization_context
    from patients.models import Patient

    organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
    if organization is None:
        return
    with organization_context(organization):
        patient = Patient.objects.filter(pk=patient_id, is_active=True).first()
        if patient is not None:
            slot = timezone.now().astimezone(organization.zone).date().isoformat()
            notice_enqueue(
                patient=patient, kind="care_plan_update", subject_type="care_plan", subject_id=care_plan_id, slot=slot
            )


@register_timeline_source("messages", clinical=False)
def message_entries(patient: Any, limit: int) -> list[TimelineEntry]:
    """Messages sent to the patient, on the patient's timeline (no body: the outbox page has it)."""
    from django.urls import reverse

    from engagement.models import OutboundMessage

    rows = (
        OutboundMessage.objects.filter(patient_id=patient.pk, sent_at__isnull=False)
        .select_related("rule")
        .order_by("-sent_at")[:limit]
    )
    return [
        TimelineEntry(
            at=m.sent_at,
            kind="message",
            title=f"{m.get_channel_display()} sent" + (f": {m.rule.name}" if m.rule else ""),
            detail=m.get_status_display(),
            url=reverse("engagement:outbox") + f"?patient={patient.pk}",
        )
        for m in rows
    ]
