"""Engagement's demo data: outreach templates (en, es), default rules, consents and the coming
reminders of the demo organizations. Registered with the core's demo registry; seed_demo orders it
after the patients' calendar, whose appointments the reminders are for.

Step "surveys" (after analytics' visit history): six months of post-visit surveys, as the survey
rule would have sent them (two hours after each completed visit, to most patients), about four in
ten answered, each practitioner with their own typical score, so the satisfaction page means
something. History only: no recovery tasks are opened for past detractors, and no comments."""

from __future__ import annotations

import random
from datetime import timedelta

from django.utils import timezone

from engagement import selectors
from engagement.management.commands.seed_engagement import seed_organization
from engagement.models import OutboundMessage, OutboxStatus, Rule, RuleKind, SurveyChannel, SurveyResponse
from healthcrm import demo
from healthcrm.demo import DemoTenant

SURVEY_DAYS = 182
SENT_SHARE, ANSWER_SHARE = 0.8, 0.4


@demo.register("outreach")
def seed_outreach(tenant: DemoTenant) -> list[str]:
    offered = seed_organization(tenant.organization)
    return [f"{offered} outreach messages"]


def _clamp(value: float, low: int, high: int) -> int:
    return max(low, min(high, round(value)))


@demo.register("surveys")
def seed_surveys(tenant: DemoTenant) -> list[str]:
    from patients.models import Appointment

    rule = Rule.objects.filter(kind=RuleKind.SURVEY).first()
    if rule is None or OutboundMessage.objects.filter(rule=rule).exists():
        return []  # no survey rule, or seeded before
    rng = random.Random(tenant.run.rng.random())
    now = timezone.now()
    visits = list(
        Appointment.objects.filter(
            status="completed", ends_at__gte=now - timedelta(days=SURVEY_DAYS), ends_at__lte=now - timedelta(hours=3)
        )
        .order_by("ends_at")
        .values_list("pk", "patient_id", "practitioner_id", "location_id", "ends_at")
    )
    typical: dict[int, float] = {}  # each practitioner's mean NPS answer
    messages, answers = [], []
    for pk, patient_id, practitioner_id, location_id, ends_at in visits:
        if rng.random() >= SENT_SHARE:
            continue
        sent_at = ends_at + timedelta(hours=2)
        messages.append(
            OutboundMessage(
                patient_id=patient_id,
                rule=rule,
                template_key=rule.template_key,
                subject_type=selectors.SURVEY_SUBJECT,
                subject_id=pk,
                channel="sms",
                slot="survey",
                status=OutboxStatus.DELIVERED,
                due_at=sent_at,
                next_attempt_at=sent_at,
                expires_at=ends_at + timedelta(days=3),
                claimed_at=sent_at,
                attempts=1,
                sent_at=sent_at,
                delivered_at=sent_at,
            )
        )
        if rng.random() < ANSWER_SHARE:
            mean = typical.setdefault(practitioner_id, rng.uniform(6.5, 9.2))
            answers.append(
                (
                    len(messages) - 1,
                    pk,
                    patient_id,
                    practitioner_id,
                    location_id,
                    _clamp(rng.gauss(mean, 2.0), 0, 10),
                    _clamp(rng.gauss(3.9, 1.0), 1, 5) if rng.random() < 0.7 else None,
                    _clamp(rng.gauss(4.1, 0.9), 1, 5) if rng.random() < 0.7 else None,
                    sent_at + timedelta(minutes=rng.randint(5, 600)),
                )
            )
    OutboundMessage.objects.bulk_create(messages, batch_size=2000)
    SurveyResponse.objects.bulk_create(
        [
            SurveyResponse(
                patient_id=patient_id,
                appointment_id=pk,
                message_id=messages[index].pk,
                practitioner_id=practitioner_id,
                location_id=location_id,
                nps=nps,
                csat_access=access,
                csat_explain=explain,
                channel=SurveyChannel.SMS_REPLY if access is None and explain is None else SurveyChannel.LINK,
                responded_at=responded_at,
            )
            for index, pk, patient_id, practitioner_id, location_id, nps, access, explain, responded_at in answers
        ],
        batch_size=2000,
    )
    return [f"{len(messages)} past surveys ({len(answers)} answered)"]
