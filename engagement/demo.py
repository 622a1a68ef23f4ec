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
from typing import Any

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


# -- Education: the library, the rule, and a history of sends and opens --------------------------

EDUCATION_DAYS = 120
EDUCATION_OPEN_SHARE = 0.55


@demo.register("education")
def seed_education(tenant: DemoTenant) -> list[str]:
    """The education library (en, es), its message templates and rule, and a deterministic history:
    over the last four months, the items that suit some of the patients' conditions were sent to
    them (in their language), and a little over half were opened, some more than once."""
    from engagement.education.demo_content import LIBRARY, TEMPLATES
    from engagement.education.models import EducationItem, EducationSend, EducationTrigger
    from engagement.education.selectors import education_item_list, version_for
    from engagement.education.services import education_item_save, education_version_save
    from engagement.models import EngagementEvent, MessageTemplate
    from engagement.services import template_save
    from patients.models import Condition, Patient

    if EducationItem.objects.exists():
        return []  # seeded before
    for key, spec in LIBRARY.items():
        item = education_item_save(
            key=key,
            format=spec["format"],
            reading_level=spec["reading_level"],
            condition_codes=spec["condition_codes"],
            medication_codes=spec["medication_codes"],
            care_plan_templates=spec["care_plan_templates"],
        )
        for language, (title, summary, body, video_url) in spec["versions"].items():
            education_version_save(
                item=item, language=language, title=title, summary=summary, body=body, video_url=video_url
            )
    for (language, channel), (subject, body) in TEMPLATES.items():
        if not MessageTemplate.objects.filter(key="education", language=language, channel=channel).exists():
            template_save(key="education", language=language, channel=channel, subject=subject, body=body)
    rule = Rule.objects.filter(kind=RuleKind.EDUCATION).first() or Rule.objects.create(
        name="Education: what to expect", kind=RuleKind.EDUCATION, template_key="education"
    )

    rng = random.Random(tenant.run.rng.random())
    now = timezone.now()
    items = list(education_item_list(active_only=True))
    by_code: dict[str, list[EducationItem]] = {}
    for item in items:
        for code in item.condition_codes:
            by_code.setdefault(code, []).append(item)
    diagnosed = (
        Condition.objects.filter(code__in=list(by_code), clinical_status="active")
        .order_by("patient_id", "code")
        .values_list("patient_id", "code")
    )
    languages = dict(Patient.objects.filter(is_active=True).values_list("pk", "preferred_language"))
    planned: list[tuple[int, EducationItem, str, str, Any]] = []
    seen: set[tuple[int, int]] = set()
    for patient_id, code in diagnosed:
        if patient_id not in languages or rng.random() >= 0.35:
            continue
        language = languages[patient_id] or "en"
        # The item of the condition written in the patient's language, when there is one.
        candidates = [(version_for(i, language), i) for i in by_code[code]]
        candidates.sort(key=lambda vi: vi[0] is None or vi[0].language != language)
        for version, item in candidates[:1]:
            if (patient_id, item.pk) in seen:
                continue
            seen.add((patient_id, item.pk))
            if version is not None:
                sent_at = now - timedelta(days=rng.randint(1, EDUCATION_DAYS), minutes=rng.randint(0, 600))
                planned.append((patient_id, item, version.language, code, sent_at))
    messages = [
        OutboundMessage(
            patient_id=patient_id,
            rule=rule,
            template_key="education",
            subject_type="education",
            subject_id=item.pk,
            channel="sms",
            slot="rule",
            status=OutboxStatus.DELIVERED,
            due_at=sent_at,
            next_attempt_at=sent_at,
            claimed_at=sent_at,
            attempts=1,
            sent_at=sent_at,
            delivered_at=sent_at,
        )
        for patient_id, item, _, _, sent_at in planned
    ]
    OutboundMessage.objects.bulk_create(messages, batch_size=2000)
    EducationSend.objects.bulk_create(
        [
            EducationSend(
                patient_id=patient_id,
                item=item,
                language=language,
                trigger=EducationTrigger.CONDITION,
                trigger_code=code,
                message=message,
            )
            for (patient_id, item, language, code, _), message in zip(planned, messages, strict=True)
        ],
        batch_size=2000,
    )
    events = []
    for (patient_id, _, _, _, sent_at), message in zip(planned, messages, strict=True):
        if rng.random() < EDUCATION_OPEN_SHARE:
            first = sent_at + timedelta(minutes=rng.randint(2, 2880))
            count = 1 if rng.random() < 0.7 else rng.randint(2, 4)
            events.append(
                EngagementEvent(
                    patient_id=patient_id,
                    message=message,
                    kind="opened",
                    first_at=first,
                    last_at=first + timedelta(days=count - 1),
                    count=count,
                )
            )
    EngagementEvent.objects.bulk_create(events, batch_size=2000)
    return [f"{len(items)} education items", f"{len(messages)} education sends ({len(events)} opened)"]


# -- Questionnaires: a year of PHQ-9 and GAD-7 answers ---------------------------------------------

QUESTIONNAIRE_SHARE = 0.25  # of patients who answered questionnaires
QUESTIONNAIRE_EVERY = timedelta(days=91)
QUESTIONNAIRE_ROUNDS = 4


def _item_scores(rng: random.Random, total: int, items: int, *, last_zero: bool) -> list[int]:
    """Item scores (0-3) adding up to `total` (capped by what the items can hold)."""
    scores = [0] * items
    open_items = list(range(items - 1 if last_zero else items))
    for _ in range(min(total, 3 * len(open_items))):
        index = rng.choice([i for i in open_items if scores[i] < 3])
        scores[index] += 1
    return scores


@demo.register("questionnaires")
def seed_questionnaires(tenant: DemoTenant) -> list[str]:
    """A year of synthetic PHQ-9 and GAD-7 responses (quarterly, by SMS link) for a quarter of the
    patients, each with its score Observation, the way the link would have recorded them. History
    only: no tasks are opened for past answers at the threshold."""
    import json

    from engagement.models import EngagementEvent
    from engagement.questionnaires import definitions, scoring, services
    from engagement.questionnaires.models import Questionnaire, QuestionnaireResponse
    from patients.models import Observation, Patient
    from patients.services import clinical_rows_create

    services.questionnaire_defaults_install()
    if QuestionnaireResponse.objects.exists():
        return []  # seeded before
    rng = random.Random(tenant.run.rng.random())
    now = timezone.now()
    chosen = {q.key: q for q in Questionnaire.objects.filter(key__in=("phq-9", "gad-7"))}
    codes = [code for code, _, _ in definitions.FREQUENCY]
    patient_ids = [
        pk for pk in Patient.objects.order_by("pk").values_list("pk", flat=True) if rng.random() < QUESTIONNAIRE_SHARE
    ]
    plans = []  # (patient id, questionnaire, sent at, item scores)
    for patient_id in patient_ids:
        questionnaire = chosen["phq-9" if rng.random() < 0.7 else "gad-7"]
        items = [q.link_id for q in scoring.questions(questionnaire.resource) if q.scored]
        level = rng.uniform(3, 18)  # most improve with care
        for round_ in range(QUESTIONNAIRE_ROUNDS):
            sent_at = now - QUESTIONNAIRE_EVERY * (QUESTIONNAIRE_ROUNDS - round_) + timedelta(hours=rng.randint(9, 17))
            total = max(0, round(level + rng.gauss(0, 2)))
            values = _item_scores(rng, total, len(items), last_zero=questionnaire.key == "phq-9")
            plans.append((patient_id, questionnaire, sent_at, dict(zip(items, values, strict=True))))
            level = max(0.0, level - rng.uniform(0, 3))
    messages = [
        OutboundMessage(
            patient_id=patient_id,
            template_key=services.TEMPLATE_KEY,
            subject_type=services.SUBJECT,
            subject_id=questionnaire.pk,
            channel="sms",
            slot=f"demo:{sent_at:%Y%m%d}",
            status=OutboxStatus.DELIVERED,
            due_at=sent_at,
            next_attempt_at=sent_at,
            claimed_at=sent_at,
            attempts=1,
            sent_at=sent_at,
            delivered_at=sent_at,
        )
        for patient_id, questionnaire, sent_at, _ in plans
    ]
    OutboundMessage.objects.bulk_create(messages, batch_size=2000)
    observations, responses = [], []
    for message, (patient_id, questionnaire, sent_at, by_item) in zip(messages, plans, strict=True):
        answered_at = sent_at + timedelta(minutes=rng.randint(10, 900))
        answers = {link_id: codes[value] for link_id, value in by_item.items()}
        result = scoring.score(
            questionnaire.resource,
            answers,
            bands=questionnaire.bands,
            alert_at=questionnaire.alert_at,
            alert_items=questionnaire.alert_items,
        )
        resource = services.response_resource(questionnaire, answers, status="completed", authored=answered_at)
        responses.append(
            QuestionnaireResponse(
                patient_id=patient_id,
                questionnaire=questionnaire,
                questionnaire_url=questionnaire.url,
                message=message,
                status="completed",
                resource=json.dumps(resource),
                score=result.total,
                band=result.band,
                alerted=result.alert,
                authored_at=answered_at,
                completed_at=answered_at,
            )
        )
        observations.append(
            Observation(
                patient_id=patient_id,
                code_system=questionnaire.total_system,
                code=questionnaire.total_code,
                display=questionnaire.total_display,
                category="survey",
                value_quantity=result.total,
                unit="{score}",
                reference_low=0,
                reference_high=(questionnaire.alert_at or 1) - 1,
                effective_at=answered_at,
            )
        )
    clinical_rows_create(rows=observations)
    for response, observation in zip(responses, observations, strict=True):
        response.observation_id = observation.pk
    QuestionnaireResponse.objects.bulk_create(responses, batch_size=2000)
    # What the engagement view and its completion rates read: each answered link was opened first.
    events = []
    for response, (_, _, sent_at, _) in zip(responses, plans, strict=True):
        answered_at = response.completed_at or sent_at
        opened_at = answered_at - timedelta(minutes=rng.randint(2, 8))
        events.append(
            EngagementEvent(
                patient_id=response.patient_id,
                message=response.message,
                kind="opened",
                first_at=opened_at,
                last_at=opened_at,
            )
        )
        events.append(
            EngagementEvent(
                patient_id=response.patient_id,
                message=response.message,
                kind="answered",
                first_at=answered_at,
                last_at=answered_at,
            )
        )
    EngagementEvent.objects.bulk_create(events, batch_size=2000)
    alerted = sum(r.alerted for r in responses)
    return [f"{len(responses)} questionnaire responses ({alerted} at the alert threshold)"]
