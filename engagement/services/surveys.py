"""Post-visit satisfaction surveys: recording an answer (by SMS reply or by the survey link), once
per survey message, and opening a service-recovery task for a detractor.

A survey message (subject "survey", subject id: the visit) accepts an answer for
links.SURVEY_VALID_FOR after it was sent. An SMS that is a bare 0-10 counts as the NPS answer to
the patient's most recent survey text when that one is still open and unanswered; otherwise it is
not a survey answer and waits in the conversation inbox like any other text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from engagement import links, selectors
from engagement.models import NPS_DETRACTOR_MAX, LinkAction, LinkUse, OutboundMessage, SurveyChannel, SurveyResponse
from healthcrm.tenancy import require_current_organization
from patients.care.services import task_assign

SCORE = re.compile(r"^\s*(\d{1,2})\s*[.!]?\s*$")
RECOVERY_DUE_IN = timedelta(days=2)
RECOVERY_TITLE = "Service recovery: a patient rated their visit 0-6 of 10; call them to follow up"


@dataclass(frozen=True)
class Answers:
    nps: int
    csat_access: int | None = None
    csat_explain: int | None = None
    comment: str = ""


def survey_score_of(body: str) -> int | None:
    """'9' -> 9: an SMS that is a bare whole number from 0 to 10 (a trailing '.' or '!' allowed)."""
    match = SCORE.match(body or "")
    if match is None:
        return None
    score = int(match.group(1))
    return score if 0 <= score <= 10 else None


def survey_open_until(message: OutboundMessage) -> datetime | None:
    """Until when a sent survey message accepts an answer (None: it was never sent)."""
    return message.sent_at + links.SURVEY_VALID_FOR if message.sent_at else None


def survey_response_record(
    *, message: OutboundMessage, answers: Answers, channel: str, now: datetime
) -> SurveyResponse | None:
    """Record the answer to a survey message, and for a detractor (NPS 0-6) a service-recovery task
    for the coordinators, due in two days, in the same transaction. None when the message was
    answered already (by another reply or a concurrent request: the unique constraint decides)."""
    appointment = selectors.appointment_get(message.subject_id)
    if appointment is None:
        return None
    response = SurveyResponse(
        patient_id=message.patient_id,
        appointment=appointment,
        message=message,
        practitioner_id=appointment.practitioner_id,
        location_id=appointment.location_id,
        nps=answers.nps,
        csat_access=answers.csat_access,
        csat_explain=answers.csat_explain,
        comment=answers.comment.strip(),
        channel=channel,
        responded_at=now,
    )
    response.full_clean(exclude=["message"])  # the constraint, not a racy pre-check, decides "once"
    try:
        with transaction.atomic():
            response.save()
            if response.nps <= NPS_DETRACTOR_MAX:
                response.recovery_task = recovery_task_create(patient=appointment.patient, now=now)
                response.save(update_fields=["recovery_task", "updated_at"])
    except IntegrityError:
        return None
    return response


def recovery_task_create(*, patient: Any, now: datetime) -> Any:
    """A coordinator task to call a detractor back. Its title names no score detail and never the
    comment (task titles show in queues); the coordinator reads the answer on the patient's record."""
    organization = require_current_organization()
    return task_assign(
        patient=patient,
        title=RECOVERY_TITLE,
        due_date=now.astimezone(organization.zone).date() + RECOVERY_DUE_IN,
        assignee_role="coordinator",
        priority="routine",
        details="Their survey answer is under Communications on the patient's page.",
    )


def survey_reply_receive(*, patients: list[Any], score: int, now: datetime) -> SurveyResponse | None:
    """An SMS score from a number shared by `patients`: the NPS of their most recent survey text,
    when it is still open and unanswered; None (nothing recorded) otherwise."""
    if not patients:
        return None
    message = selectors.latest_sms_survey_for(
        patient_ids=[p.pk for p in patients], sent_after=now - links.SURVEY_VALID_FOR
    )
    if message is None or selectors.survey_answered(message):
        return None
    return survey_response_record(message=message, answers=Answers(nps=score), channel=SurveyChannel.SMS_REPLY, now=now)


# -- The survey link ------------------------------------------------------------------------------


def survey_link_state(*, message: OutboundMessage, claims: links.LinkClaims, now: datetime) -> str:
    """ "ask" (show the form), "used" (answered already, by link or reply), "expired", "unavailable"."""
    if message.subject_type != selectors.SURVEY_SUBJECT or selectors.appointment_get(message.subject_id) is None:
        return "unavailable"
    if selectors.survey_answered(message) or LinkUse.objects.filter(message=message, action=claims.action).exists():
        return "used"
    open_until = survey_open_until(message)
    if now >= links.link_expires_at(claims) or (open_until is not None and now >= open_until):
        return "expired"
    return "ask"


def survey_link_use(*, message: OutboundMessage, claims: links.LinkClaims, answers: Answers, now: datetime) -> str:
    """Record the form's answers once: "done", or the state that stopped it."""
    state = survey_link_state(message=message, claims=claims, now=now)
    if state != "ask":
        return state
    with transaction.atomic():
        response = survey_response_record(message=message, answers=answers, channel=SurveyChannel.LINK, now=now)
        if response is None:
            return "used"
        LinkUse.objects.create(message=message, action=LinkAction.SURVEY, used_at=now)
    return "done"
