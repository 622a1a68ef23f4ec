"""Questionnaire reads: definitions, a patient's responses, what the export and analytics need."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery

from engagement.questionnaires.models import Questionnaire, QuestionnaireResponse, ResponseStatus


def questionnaire_list() -> QuerySet[Questionnaire]:
    return Questionnaire.objects.order_by("title")


def responses_for_patient(*, patient_id: int) -> QuerySet[QuestionnaireResponse]:
    """A patient's responses, newest first, with their definitions (one query)."""
    return QuestionnaireResponse.objects.filter(patient_id=patient_id).select_related("questionnaire", "task")


def completion_counts() -> dict[str, int]:
    """Questionnaires sent (messages) and completed responses of the current organization, for the
    engagement view and analytics: {"sent": n, "started": n, "completed": n}."""
    from engagement.models import OutboundMessage

    sent = OutboundMessage.objects.filter(subject_type="questionnaire", status__in=("sent", "delivered")).count()
    responses = QuestionnaireResponse.objects.exclude(message=None)
    return {
        "sent": sent,
        "started": responses.count(),
        "completed": responses.filter(status=ResponseStatus.COMPLETED).count(),
    }


def response_for_message(*, message_id: int) -> QuestionnaireResponse | None:
    """The response a questionnaire link has (None before the patient first saves)."""
    return QuestionnaireResponse.objects.filter(message_id=message_id).first()


def questionnaire_titles(message_ids: list[int]) -> dict[int, str]:
    """Message id -> the title of the questionnaire it carried ("PHQ-9"), one query: the engagement
    view, timeline and analytics (registered in engagement.selectors)."""
    from engagement.models import OutboundMessage

    title = Questionnaire.objects.filter(pk=OuterRef("subject_id")).values("title")[:1]
    rows = (
        OutboundMessage.objects.filter(pk__in=message_ids, subject_type="questionnaire")
        .annotate(title=Subquery(title))
        .values_list("pk", "title")
    )
    return {pk: title for pk, title in rows if title}
