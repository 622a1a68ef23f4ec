"""Writes of the education library: items and versions (bodies sanitised), a send from the record,
and the sends rules make when a diagnosis, a medication or a care plan is added.

Every send goes through the outbox (engagement.services.outbox_enqueue): consent decides whether
and on which channel, the patient's sending window when, the caps how often; the outbox key makes
it exactly-once. Rule-triggered sends are once per patient and item, ever (a partial unique
constraint on EducationSend): a patient who could not be reached gets nothing recorded, so a later
trigger may still reach them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from engagement import etiquette, selectors
from engagement.education import selectors as education_selectors
from engagement.education.models import EducationItem, EducationSend, EducationTrigger, EducationVersion
from engagement.education.sanitize import sanitize_html
from engagement.models import OutboundMessage, Rule, RuleKind
from engagement.services.outbox import outbox_enqueue
from engagement.tasks import outbox_send_task

EDUCATION_SUBJECT = education_selectors.EDUCATION_SUBJECT
# The message template key of education sends (a built-in text is used when the clinic has none).
EDUCATION_TEMPLATE = "education"
# Held back by quiet hours or caps longer than this, "here is what to expect" is no longer timely.
EDUCATION_EXPIRY = timedelta(days=7)
RULE_SLOT = "rule"
TRIGGERS = (EducationTrigger.CONDITION, EducationTrigger.MEDICATION, EducationTrigger.CARE_PLAN)


def _codes(values: Any) -> list[str]:
    return sorted({str(v).strip() for v in values or [] if str(v).strip()})


@transaction.atomic
def education_item_save(
    *,
    item: EducationItem | None = None,
    key: str,
    format: str,  # noqa: A002 - the field's name
    reading_level: str,
    condition_codes: list[str] | None = None,
    medication_codes: list[str] | None = None,
    care_plan_templates: list[str] | None = None,
    is_active: bool = True,
) -> EducationItem:
    """Create or update a library item (codes trimmed and de-duplicated)."""
    item = item or EducationItem()
    item.key, item.format, item.reading_level, item.is_active = key.strip(), format, reading_level, is_active
    item.condition_codes = _codes(condition_codes)
    item.medication_codes = _codes(medication_codes)
    item.care_plan_templates = _codes(care_plan_templates)
    item.full_clean()
    item.save()
    return item


@transaction.atomic
def education_version_save(
    *,
    version: EducationVersion | None = None,
    item: EducationItem,
    language: str,
    title: str,
    body: str = "",
    summary: str = "",
    video_url: str = "",
) -> EducationVersion:
    """Create or update an item's version in a language; the body is sanitised before it is stored."""
    version = version or EducationVersion(item=item)
    version.item = item
    version.language = language.strip() or "en"
    version.title, version.summary = title.strip(), summary.strip()
    version.body = sanitize_html(body)
    version.video_url = video_url.strip()
    if version.video_url and not version.video_url.lower().startswith("https://"):
        raise ValidationError({"video_url": "Give the video's https:// link."})
    if not version.body and not version.video_url:
        raise ValidationError({"body": "Write the text, or give the video's link."})
    version.full_clean()
    version.save()
    return version


def _after_commit_send(message: OutboundMessage) -> None:
    """Send at once when the message is due now (else the outbox scan sends it in its window)."""
    if message.status == "pending" and message.next_attempt_at <= timezone.now():
        organization_id, message_id = message.organization_id, message.pk
        transaction.on_commit(lambda: outbox_send_task.delay(organization_id, message_id))


def education_send_problem(*, patient: Any, item: EducationItem) -> str:
    """Why this item cannot be sent to this patient now ('' when it can)."""
    if not patient.is_active:
        return "This patient record is inactive."
    if not item.is_active:
        return "This item is not active in the library."
    if education_selectors.version_for(item, patient.preferred_language) is None:
        return "This item has no text yet."
    channel = etiquette.choose_channel(patient, selectors.consents_for([patient.pk]), selectors.channel_settings_get())
    if channel is None:
        return "This patient cannot be reached: no channel with an address and without an opt-out."
    return ""


@transaction.atomic
def education_send(*, patient: Any, item: EducationItem, key: str, actor: Any) -> EducationSend:
    """Send an item to a patient from the record, in their language (or the fallback). Idempotent
    per form `key` (the outbox key's slot): the same form sent twice is one message. Raises
    ValidationError (nothing queued) when it cannot go."""
    from engagement.services.staff_messages import KEY_PATTERN

    if not KEY_PATTERN.match(key or ""):
        raise ValidationError("This form has expired: open the Education tab again.")
    problem = education_send_problem(patient=patient, item=item)
    if problem:
        raise ValidationError({"item": problem})
    version = education_selectors.version_for(item, patient.preferred_language)
    assert version is not None  # checked above
    now = timezone.now()
    message = outbox_enqueue(
        patient=patient,
        subject_type=EDUCATION_SUBJECT,
        subject_id=item.pk,
        slot=f"staff:{key}",
        due_at=now,
        template_key=EDUCATION_TEMPLATE,
        urgent=False,
        expires_at=now + EDUCATION_EXPIRY,
        sent_by=actor,
    )
    if message is None:
        raise ValidationError({"item": "This patient cannot be reached on any channel."})
    send, created = EducationSend.objects.get_or_create(
        message=message,
        defaults={
            "patient": patient,
            "item": item,
            "language": version.language,
            "trigger": EducationTrigger.STAFF,
            "sent_by": actor if getattr(actor, "is_authenticated", False) else None,
        },
    )
    if created:
        _after_commit_send(message)
    return send


def education_rule_for(trigger: str) -> Rule | None:
    """The active education rule that sends on this trigger (params "on": the triggers; all by
    default). Not an opt-in kind: care information goes unless the patient opted out."""
    for rule in Rule.objects.filter(kind=RuleKind.EDUCATION, is_active=True).order_by("pk"):
        on = rule.params.get("on") or list(TRIGGERS)
        if trigger in on:
            return rule
    return None


def education_auto_send(*, patient: Any, trigger: str, code: str, now: Any = None) -> list[EducationSend]:
    """ "Here is what to expect": the items that suit a new diagnosis, medication or care plan, sent
    by the education rule in the patient's language, once per patient and item ever. Returns the
    sends made now (none when no rule is active, nothing suits, or the patient cannot be reached)."""
    rule = education_rule_for(trigger)
    if rule is None or not patient.is_active:
        return []
    now = now or timezone.now()
    made = []
    for item in education_selectors.items_for(trigger=trigger, code=code):
        version = education_selectors.version_for(item, patient.preferred_language)
        if version is None:
            continue
        try:
            with transaction.atomic():
                send = EducationSend.objects.create(
                    patient=patient, item=item, language=version.language, trigger=trigger, trigger_code=code[:64]
                )
                message = outbox_enqueue(
                    patient=patient,
                    rule=rule,
                    subject_type=EDUCATION_SUBJECT,
                    subject_id=item.pk,
                    slot=RULE_SLOT,
                    due_at=now,
                    expires_at=now + EDUCATION_EXPIRY,
                )
                if message is None:
                    raise _Unreachable
                send.message = message
                send.save(update_fields=["message", "updated_at"])
        except IntegrityError:
            continue  # sent to this patient by a rule before (or a concurrent trigger is sending it)
        except _Unreachable:
            continue  # no channel now: nothing recorded, a later trigger may reach them
        _after_commit_send(message)
        made.append(send)
    return made


class _Unreachable(Exception):
    """Rolls back a send's row when its message could not be queued."""
