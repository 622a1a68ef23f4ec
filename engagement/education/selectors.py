"""Reads of the education library, always in the current organization."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from engagement.education.models import EducationItem, EducationSend, EducationTrigger, EducationVersion

EDUCATION_SUBJECT = "education"  # OutboundMessage.subject_type of a send; subject_id is the item


def education_item_list(*, active_only: bool = False) -> QuerySet[EducationItem]:
    """The library, by key, each item's versions prefetched (two queries)."""
    items = EducationItem.objects.prefetch_related(
        Prefetch("versions", queryset=EducationVersion.objects.order_by("language"))
    ).order_by("key")
    return items.filter(is_active=True) if active_only else items


def code_suits(code: str, codes: list[str]) -> bool:
    """Whether a record's code is one of an item's: equal, or an ICD-10-CM sub-code ("E11.9" of "E11")."""
    code = code.strip().upper()
    return any(code == c.upper() or code.startswith(c.upper() + ".") for c in codes if c)


def items_for(*, trigger: str, code: str) -> list[EducationItem]:
    """Active items that suit a new diagnosis, medication or care plan (by its code). The library
    is small (tens of items): matched in Python, one query."""
    if not code:
        return []
    field = {
        EducationTrigger.CONDITION: "condition_codes",
        EducationTrigger.MEDICATION: "medication_codes",
        EducationTrigger.CARE_PLAN: "care_plan_templates",
    }.get(EducationTrigger(trigger))
    if field is None:
        return []
    return [item for item in education_item_list(active_only=True) if code_suits(code, getattr(item, field))]


def version_for(item: EducationItem, language: str) -> EducationVersion | None:
    """The item in the patient's language: exactly, else its base language (es-MX -> es), else
    English, else the first version there is (None: the item has no version yet)."""
    versions = {v.language.lower(): v for v in item.versions.all()}
    language = (language or "en").lower()
    for wanted in (language, language.split("-")[0], "en"):
        if wanted in versions:
            return versions[wanted]
    return next(iter(sorted(versions.items())), (None, None))[1]


def education_send_for_message(message_id: int) -> EducationSend | None:
    """The send a message carries (item and versions loaded), or None."""
    return (
        EducationSend.objects.select_related("item")
        .prefetch_related("item__versions")
        .filter(message_id=message_id)
        .first()
    )


def education_titles(message_ids: list[int]) -> dict[int, str]:
    """Message id -> the title of the education it carried, in the language sent (two queries)."""
    sends = list(EducationSend.objects.filter(message_id__in=message_ids).select_related("item"))
    versions = {
        (v.item_id, v.language): v.title
        for v in EducationVersion.objects.filter(item_id__in={s.item_id for s in sends})
    }
    return {s.message_id: versions.get((s.item_id, s.language), s.item.key) for s in sends if s.message_id}


def education_send_count(*, patient: Any, item: EducationItem) -> int:
    return EducationSend.objects.filter(patient_id=patient.pk, item=item).count()
