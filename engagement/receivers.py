"""Outreach's subscriptions to events of other apps (connected in EngagementConfig.ready)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from patients.care.timeline import TimelineEntry, register_timeline_source
from patients.erasure.policy import MESSAGES, register_erasure_policy
from patients.signals import care_plan_updated, patient_created, waitlist_offered


@receiver(care_plan_updated, dispatch_uid="engagement.care_plan_notice")
def care_plan_notice(
    sender: Any, organization_id: int, patient_id: int, care_plan_id: int | None, change: str, **kwargs: Any
) -> None:
    """ "Your care plan was updated": at most one notice per plan a day (the outbox key's slot).

    The signal arrives after the change committed, so this opens its own organization context.
    The notice itself carries no detail of the change (SMS carry the minimum).
    """
    from engagement.services import notice_enqueue
    from healthcrm.models import Organization
    from healthcrm.tenancy import organization_context
    from patients.models import Patient

    if care_plan_id is None:
        return  # a task outside any plan: no care-plan notice
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


@receiver(patient_created, dispatch_uid="engagement.intake_consent")
def intake_consent(
    sender: Any, organization_id: int, patient_id: int, consents: tuple[str, ...], **kwargs: Any
) -> None:
    """The channels a new patient agreed to at intake become opted-in consents (source: intake).

    Sent inside the creating transaction and organization context: the consents commit with the patient.
    """
    from engagement.models import ConsentSource, ConsentStatus
    from engagement.services import consent_set
    from patients.models import Patient

    if not consents:
        return
    patient = Patient.objects.get(pk=patient_id)
    for channel in consents:
        consent_set(patient=patient, channel=channel, status=ConsentStatus.OPTED_IN, source=ConsentSource.INTAKE)


@receiver(waitlist_offered, dispatch_uid="engagement.waitlist_offer_notices")
def waitlist_offer_notice(sender: Any, organization_id: int, offer_ids: tuple[int, ...], **kwargs: Any) -> None:
    """A freed slot offered to waiting patients: queue their messages in the freeing transaction
    (sent inside scheduling's organization context; a rolled-back cancel offers nothing)."""
    from engagement.services import waitlist_offer_notices

    waitlist_offer_notices(offer_ids=offer_ids)


# A laboratory result older than this when recorded is history (an import, a back-entry): no notice.
LAB_NOTICE_MAX_AGE = timedelta(days=14)


@receiver(post_save, sender="patients.Observation", dispatch_uid="engagement.lab_results_notice")
def lab_results_notice(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """ "Your lab results are available" when a laboratory observation is recorded.

    patients/ sends no event for results, so this listens to Django's post_save (saves through
    the model: patients.services.observation_record, FHIR and device imports; not bulk_create).
    The notice goes after commit (a rolled-back result is never announced), at most once per
    patient a day (slot: the day, subject: none), and never carries the result.
    """
    if raw or not created or instance.category != "laboratory":
        return
    if instance.effective_at < timezone.now() - LAB_NOTICE_MAX_AGE:
        return
    organization_id, patient_id = instance.organization_id, instance.patient_id
    transaction.on_commit(lambda: _lab_results_enqueue(organization_id, patient_id))


def _lab_results_enqueue(organization_id: int, patient_id: int) -> None:
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
            notice_enqueue(patient=patient, kind="lab_results", subject_type="lab_results", subject_id=None, slot=slot)


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


# -- Education: "here is what to expect" on a new diagnosis, medication or care plan -------------

# Statuses of a problem that make it news to the patient (an inactive or resolved one is history).
_ACTIVE_CONDITION = ("active", "recurrence", "relapse")


@receiver(post_save, sender="patients.Condition", dispatch_uid="engagement.education_on_condition")
def education_on_condition(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """A problem added to the list (patients.services.condition_add and other saves through the
    model; FHIR imports of history go through bulk_create and send nothing). After commit, ids only."""
    if raw or not created or instance.clinical_status not in _ACTIVE_CONDITION:
        return
    _education_after_commit(instance.organization_id, instance.patient_id, "condition", instance.code)


@receiver(post_save, sender="patients.Medication", dispatch_uid="engagement.education_on_medication")
def education_on_medication(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """A medication added (active, with an RxNorm code)."""
    if raw or not created or instance.status != "active" or not instance.code:
        return
    _education_after_commit(instance.organization_id, instance.patient_id, "medication", instance.code)


@receiver(care_plan_updated, dispatch_uid="engagement.education_on_care_plan")
def education_on_care_plan(
    sender: Any, organization_id: int, patient_id: int, care_plan_id: int | None, change: str, **kwargs: Any
) -> None:
    """A care plan started from a template: the items that suit the template's code (the signal
    arrives after commit)."""
    if change != "started" or care_plan_id is None:
        return
    _education_enqueue(organization_id, patient_id, "care_plan", None, care_plan_id=care_plan_id)


def _education_after_commit(organization_id: int, patient_id: int, trigger: str, code: str) -> None:
    transaction.on_commit(lambda: _education_enqueue(organization_id, patient_id, trigger, code))


def _education_enqueue(
    organization_id: int, patient_id: int, trigger: str, code: str | None, *, care_plan_id: int | None = None
) -> None:
    from engagement.education.services import education_auto_send
    from healthcrm.models import Organization
    from healthcrm.tenancy import organization_context
    from patients.models import CarePlan, Patient

    organization = Organization.objects.filter(pk=organization_id, is_active=True).first()
    if organization is None:
        return
    with organization_context(organization):
        if care_plan_id is not None:
            plan = CarePlan.objects.select_related("template").filter(pk=care_plan_id).first()
            code = plan.template.code if plan is not None and plan.template is not None else None
        patient = Patient.objects.filter(pk=patient_id, is_active=True).first()
        if patient is not None and code:
            education_auto_send(patient=patient, trigger=trigger, code=code)


@register_timeline_source("engagement", clinical=True)
def engagement_entries(patient: Any, limit: int) -> list[TimelineEntry]:
    """What the patient opened or answered of what they were sent (education titles may say what
    the patient is treated for: clinical users only)."""
    from django.urls import reverse

    from engagement.models import EngagementEvent
    from engagement.selectors import engagement_contents

    titles_by_kind = {c.subject_type: c for c in engagement_contents()}
    events = list(
        EngagementEvent.objects.filter(patient_id=patient.pk)
        .select_related("message")
        .order_by("-first_at", "-id")[:limit]
    )
    titles: dict[int, str] = {}
    for subject_type, content in titles_by_kind.items():
        ids = [e.message_id for e in events if e.message.subject_type == subject_type]
        if ids:
            titles.update(content.titles(ids))
    url = reverse("engagement:patient_engagement", args=[patient.pk])
    return [
        TimelineEntry(
            at=e.first_at,
            kind="engagement",
            title=f"{e.get_kind_display()} by the patient: {titles.get(e.message_id, 'a message')}",
            detail=f"Opened {e.count} times" if e.count > 1 else "",
            url=url,
        )
        for e in events
    ]


# Erasure and retention (patients/erasure/): messages and call notes are erased with the patient
# (every encrypted field, the default) and deleted by the retention job on the messages period.
register_erasure_policy("engagement.outboundmessage", retention=MESSAGES)
register_erasure_policy("engagement.conversationmessage", retention=MESSAGES)
register_erasure_policy("engagement.calllog", retention=MESSAGES, date_field="called_at")
