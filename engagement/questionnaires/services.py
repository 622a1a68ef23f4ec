"""Questionnaire writes: import a definition, install the defaults, send one (from the record or by
rule, through the outbox: consent, quiet hours and caps apply), and record a patient's answers from
the signed link (saved as they go, completed once, scored, written to the record).

A questionnaire message is an OutboundMessage with subject "questionnaire" (subject id: the
definition); its link (action "questionnaire") opens the form. The response is created at the
first save and is unique per message, so one link gives one response; once completed, the link
shows "already answered" and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify
from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire
from pydantic import ValidationError as PydanticValidationError

from engagement import links, selectors
from engagement.models import EngagementEventKind, MessageTemplate, OutboundMessage, Rule
from engagement.questionnaires import definitions, scoring
from engagement.questionnaires.models import Questionnaire, QuestionnaireResponse, ResponseStatus
from engagement.services.events import engagement_event_record
from engagement.services.outbox import outbox_enqueue, outbox_row_for
from engagement.services.rules import template_save
from engagement.services.staff_messages import KEY_PATTERN, staff_message_problem
from engagement.tasks import outbox_send_task
from healthcrm.tenancy import require_current_organization

SUBJECT = "questionnaire"
TEMPLATE_KEY = "questionnaire"
# Held back by quiet hours or caps for longer than this, a questionnaire is not worth sending.
SEND_EXPIRY = timedelta(days=3)
MAX_IMPORT_BYTES = 200_000
DEFAULT_CRISIS_TEXT = (
    "If you are thinking about hurting yourself, or you need help now: call your clinic, or call your "
    "local emergency number. In the US, call or text 988 (Suicide & Crisis Lifeline) at any hour."
)
ALERT_TITLE = "Urgent: a patient's questionnaire answers need review today"

TEMPLATES = {
    ("en", "sms"): (
        "",
        "Hi {{ first_name }}, {{ clinic_name }} asks you to answer a few short questions before we talk "
        "again: {{ questionnaire_link }}",
    ),
    ("es", "sms"): (
        "",
        "Hola {{ first_name }}, {{ clinic_name }} le pide contestar unas preguntas breves: {{ questionnaire_link }}",
    ),
    ("en", "email"): (
        "A few questions from {{ clinic_name }}",
        "Dear {{ first_name }},\n\nYour care team at {{ clinic_name }} asks you to answer a few short "
        "questions. It takes about two minutes, and you can stop and come back:\n{{ questionnaire_link }}\n\n"
        "Unsubscribe: {{ unsubscribe_link }}",
    ),
    ("es", "email"): (
        "Unas preguntas de {{ clinic_name }}",
        "Estimado/a {{ first_name }}:\n\nSu equipo de {{ clinic_name }} le pide contestar unas preguntas "
        "breves (unos dos minutos):\n{{ questionnaire_link }}\n\nDarse de baja: {{ unsubscribe_link }}",
    ),
}


# -- Organization options ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QuestionnaireOptions:
    crisis_text: str
    alert_at: dict[str, int]  # questionnaire key -> threshold overriding the definition's default


def questionnaire_options(organization: Any) -> QuestionnaireOptions:
    """Organization.settings["questionnaires"]: {"crisis_text": "...", "alert_at": {"phq-9": 12}}."""
    raw = (organization.settings or {}).get("questionnaires") if organization is not None else None
    raw = raw if isinstance(raw, dict) else {}
    text = raw.get("crisis_text")
    given = raw.get("alert_at")
    given = given if isinstance(given, dict) else {}
    # A threshold that is not a small whole number is ignored (the definition's default applies).
    thresholds = {
        str(key): value
        for key, value in given.items()
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1000
    }
    crisis = text.strip()[:1000] if isinstance(text, str) and text.strip() else DEFAULT_CRISIS_TEXT
    return QuestionnaireOptions(crisis_text=crisis, alert_at=thresholds)


def alert_threshold(questionnaire: Questionnaire) -> int | None:
    options = questionnaire_options(require_current_organization())
    return options.alert_at.get(questionnaire.key, questionnaire.alert_at)


# -- Definitions ------------------------------------------------------------------------------------


def _pydantic_problem(exc: PydanticValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "Questionnaire: invalid"
    where = ".".join(str(part) for part in errors[0]["loc"]) or "Questionnaire"
    return f"{where}: {errors[0]['msg']}"


def questionnaire_import(*, data: str | bytes | Mapping[str, Any], key: str = "", actor: Any = None) -> Questionnaire:
    """Store a FHIR R4 Questionnaire (JSON text or a parsed dict) as one of this organization's.

    Validated with fhir.resources' R4B model; it needs a canonical `url` and at least one choice
    question with coded answer options. A PHQ-9 or GAD-7 (by its LOINC panel code) is scored like
    the defaults. Raises ValidationError with a message naming the element (nothing stored)."""
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_IMPORT_BYTES:
            raise ValidationError(f"The file is larger than {MAX_IMPORT_BYTES // 1000} kB.")
        try:
            resource = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise ValidationError("This is not JSON.") from None
    else:
        resource = dict(data)
    if not isinstance(resource, dict) or resource.get("resourceType") != "Questionnaire":
        raise ValidationError("This is not a FHIR Questionnaire (resourceType must be Questionnaire).")
    try:
        FhirQuestionnaire.model_validate(resource)
    except PydanticValidationError as exc:
        raise ValidationError(f"Not a valid FHIR R4 Questionnaire: {_pydantic_problem(exc)}.") from None
    except (ValueError, TypeError, RecursionError):
        raise ValidationError("Not a valid FHIR R4 Questionnaire.") from None
    if not resource.get("url"):
        raise ValidationError("Not a valid FHIR R4 Questionnaire: url: a canonical URL is required to import it.")
    if not scoring.questions(resource):
        raise ValidationError("This questionnaire has no choice question with coded answer options.")
    panel = next((str(c.get("code")) for c in resource.get("code") or [] if isinstance(c, dict)), "")
    rules = definitions.SCORING_BY_PANEL.get(panel)
    title = str(resource.get("title") or resource.get("name") or resource["url"])[:200]
    questionnaire = Questionnaire(
        key=(key or slugify(str(resource.get("name") or title)))[:64] or "questionnaire",
        title=title,
        url=str(resource["url"])[:255],
        version=str(resource.get("version") or "")[:32],
        resource=resource,
    )
    if rules is not None:
        _apply_scoring(questionnaire, rules)
    questionnaire.full_clean()
    questionnaire.save()
    return questionnaire


def _apply_scoring(questionnaire: Questionnaire, rules: definitions.Scoring) -> None:
    questionnaire.total_system = rules.total_system
    questionnaire.total_code = rules.total_code
    questionnaire.total_display = rules.total_display
    questionnaire.bands = [list(band) for band in rules.bands]
    questionnaire.alert_at = rules.alert_at
    questionnaire.alert_items = list(rules.alert_items)


@transaction.atomic
def questionnaire_defaults_install() -> int:
    """Give the current organization PHQ-9, GAD-7 and the medication check, and the message
    templates that send them (en, es; SMS and email). Idempotent; returns how many were added."""
    added = 0
    for default in definitions.DEFAULTS:
        if Questionnaire.objects.filter(key=default.key).exists():
            continue
        resource = default.build()
        questionnaire = Questionnaire(
            key=default.key,
            title=resource["title"],
            url=resource["url"],
            version=resource["version"],
            resource=resource,
        )
        _apply_scoring(questionnaire, default.scoring)
        questionnaire.full_clean()
        questionnaire.save()
        added += 1
    for (language, channel), (subject, body) in TEMPLATES.items():
        if not MessageTemplate.objects.filter(key=TEMPLATE_KEY, language=language, channel=channel).exists():
            template_save(key=TEMPLATE_KEY, language=language, channel=channel, subject=subject, body=body)
    return added


# -- Sending ----------------------------------------------------------------------------------------


@transaction.atomic
def questionnaire_send(
    *, patient: Any, questionnaire: Questionnaire, channel: str, key: str, actor: Any
) -> OutboundMessage:
    """Queue a questionnaire's link to a patient from the record (SMS or email; '' picks the channel
    from consent and preference). Consent decides whether it may go, quiet hours when; idempotent
    per form `key`. Raises ValidationError (nothing queued)."""
    if not KEY_PATTERN.match(key or ""):
        raise ValidationError("This form has expired: open the record again.")
    if not questionnaire.is_active:
        raise ValidationError({"questionnaire": "This questionnaire is switched off."})
    if channel:
        problem = staff_message_problem(patient=patient, channel=channel)
        if problem:
            raise ValidationError({"channel": problem})
    elif not patient.is_active:
        raise ValidationError("This patient record is inactive.")
    now = timezone.now()
    message = outbox_enqueue(
        patient=patient,
        subject_type=SUBJECT,
        subject_id=questionnaire.pk,
        slot=f"staff:{key}",
        due_at=now,
        channel=channel or None,
        template_key=TEMPLATE_KEY,
        urgent=False,
        expires_at=now + SEND_EXPIRY,
        sent_by=actor,
    )
    if message is None:
        raise ValidationError({"channel": "This patient cannot be reached: no channel they agreed to."})
    if message.next_attempt_at <= now and message.status == "pending":
        organization_id, message_id = message.organization_id, message.pk
        transaction.on_commit(lambda: outbox_send_task.delay(organization_id, message_id))
    return message


def questionnaire_materialize(rule: Rule, now: datetime) -> int:
    """Rule kind "questionnaire": `params.questionnaire` (a key) to active patients (with the active
    condition `params.condition_code` when given), once every `params.every_days` days (default 90;
    slot "q:<period>", so exactly once per period), expiring three days after. Consent, quiet hours
    and caps apply as to any care message."""
    from engagement.services.materializers import chunked_rows_create
    from patients.models import Patient

    questionnaire = Questionnaire.objects.filter(key=str(rule.params.get("questionnaire", "")), is_active=True).first()
    if questionnaire is None:
        return 0
    organization = require_current_organization()
    every = max(1, int(rule.params.get("every_days", 90)))
    today = now.astimezone(organization.zone).date()
    slot = f"q:{today.toordinal() // every}"
    cohort = Patient.objects.filter(is_active=True)
    if rule.params.get("condition_code"):
        cohort = cohort.filter(
            conditions__code=str(rule.params["condition_code"]),
            conditions__clinical_status__in=("active", "recurrence", "relapse"),
        )
    done = OutboundMessage.objects.filter(rule=rule, slot=slot).values_list("patient_id", flat=True)
    ids = sorted(set(cohort.exclude(pk__in=done).values_list("pk", flat=True)))
    settings_ = selectors.channel_settings_get()

    def rows_for(patient: Any, consents: dict[tuple[int, str], str]) -> list[OutboundMessage | None]:
        return [
            outbox_row_for(
                rule=rule,
                patient=patient,
                consents=consents,
                settings_=settings_,
                subject_type=SUBJECT,
                subject_id=questionnaire.pk,
                slot=slot,
                due_at=now,
                expires_at=now + SEND_EXPIRY,
            )
        ]

    return chunked_rows_create(ids, rows_for)


# -- The patient's link -------------------------------------------------------------------------------


def questionnaire_of(message: OutboundMessage) -> Questionnaire | None:
    if message.subject_type != SUBJECT or message.subject_id is None:
        return None
    return Questionnaire.objects.filter(pk=message.subject_id).first()


def questionnaire_link_state(*, message: OutboundMessage, claims: links.LinkClaims, now: datetime) -> str:
    """ "ask" (show the form), "used" (completed already), "expired", "unavailable"."""
    if questionnaire_of(message) is None:
        return "unavailable"
    if QuestionnaireResponse.objects.filter(message=message, status=ResponseStatus.COMPLETED).exists():
        return "used"
    if now >= links.link_expires_at(claims):
        return "expired"
    return "ask"


def answers_of(response: QuestionnaireResponse | None) -> dict[str, str]:
    """{link id: answer code} of a stored response."""
    if response is None or not response.resource:
        return {}
    resource = json.loads(response.resource)
    found = {}
    for item in resource.get("item") or []:
        for answer in item.get("answer") or []:
            code = (answer.get("valueCoding") or {}).get("code")
            if code:
                found[str(item.get("linkId"))] = str(code)
    return found


def answers_check(questionnaire: Questionnaire, answers: Mapping[str, str], *, complete: bool) -> dict[str, str]:
    """The answers kept (empty ones dropped); raises ValidationError naming each question whose
    answer is not one of its options, and, when `complete`, each required question left empty."""
    by_id = {q.link_id: q for q in scoring.questions(questionnaire.resource)}
    errors: dict[str, str] = {}
    kept: dict[str, str] = {}
    for link_id, code in answers.items():
        if code in ("", None):
            continue
        question = by_id.get(link_id)
        if question is None:
            errors[link_id] = "This is not a question of this questionnaire."
            continue
        if question.option(str(code)) is None:
            errors[link_id] = f"Question {question.number} ({question.text}): choose one of the answers offered."
            continue
        kept[link_id] = str(code)
    if complete:
        for question in by_id.values():
            if question.required and question.link_id not in kept and question.link_id not in errors:
                errors[question.link_id] = f"Question {question.number} ({question.text}): please answer it."
    if errors:
        raise ValidationError(errors)
    return kept


def response_resource(
    questionnaire: Questionnaire, answers: Mapping[str, str], *, status: str, authored: datetime
) -> dict[str, Any]:
    """The FHIR QuestionnaireResponse of these answers (without its subject: the row has the patient)."""
    items = []
    for question in scoring.questions(questionnaire.resource):
        option = question.option(answers.get(question.link_id, ""))
        if option is None:
            continue
        coding = {"code": option.code, "display": option.display}
        if option.system:
            coding["system"] = option.system
        items.append({"linkId": question.link_id, "text": question.text, "answer": [{"valueCoding": coding}]})
    canonical = questionnaire.url + (f"|{questionnaire.version}" if questionnaire.version else "")
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": canonical,
        "status": status,
        "authored": authored.astimezone(UTC).isoformat(),
        "item": items,
    }


@dataclass(frozen=True)
class Saved:
    state: str  # "saved" (progress kept), "done" (completed now), or the link state that stopped it
    response: QuestionnaireResponse | None = None


def questionnaire_answers_save(
    *,
    message: OutboundMessage,
    claims: links.LinkClaims,
    answers: Mapping[str, str],
    submit: bool,
    now: datetime,
) -> Saved:
    """Keep the patient's answers (in progress), or complete the response once: score it, write its
    total to the record, open an urgent task at the organization's threshold and record the
    engagement event "answered", all in one transaction. Raises ValidationError (nothing written)
    for an answer outside the options, or a required question unanswered on submit."""
    state = questionnaire_link_state(message=message, claims=claims, now=now)
    if state != "ask":
        return Saved(state)
    questionnaire = questionnaire_of(message)
    assert questionnaire is not None  # the state says so
    kept = answers_check(questionnaire, answers, complete=submit)
    try:
        with transaction.atomic():
            response = QuestionnaireResponse.objects.select_for_update().filter(message=message).first()
            if response is not None and response.status == ResponseStatus.COMPLETED:
                return Saved("used")
            status = ResponseStatus.COMPLETED if submit else ResponseStatus.IN_PROGRESS
            resource = response_resource(questionnaire, kept, status=status, authored=now)
            if response is None:
                response = QuestionnaireResponse(
                    patient_id=message.patient_id,
                    questionnaire=questionnaire,
                    questionnaire_url=questionnaire.url,
                    message=message,
                    sent_by_id=message.sent_by_id,
                )
            response.status = status
            response.resource = json.dumps(resource)
            response.authored_at = now
            if submit:
                _complete(response, questionnaire, kept, now)
            response.full_clean(exclude=["message"])
            response.save()
            if submit:
                _record(response, questionnaire, now)
                engagement_event_record(message=message, kind=EngagementEventKind.ANSWERED, now=now)
    except IntegrityError:  # a concurrent first save of the same link won
        return Saved("used")
    return Saved("done" if submit else "saved", response)


def _complete(
    response: QuestionnaireResponse, questionnaire: Questionnaire, answers: Mapping[str, str], now: datetime
) -> None:
    result = scoring.score(
        questionnaire.resource,
        answers,
        bands=questionnaire.bands,
        alert_at=alert_threshold(questionnaire),
        alert_items=questionnaire.alert_items,
    )
    response.score = result.total
    response.band = result.band[:64]
    response.alerted = result.alert
    response.completed_at = now


def _record(response: QuestionnaireResponse, questionnaire: Questionnaire, now: datetime) -> None:
    """The total as an Observation (category survey; the range's top is just under the alert
    threshold, so the record flags a score that reached it), and the urgent task."""
    from patients.models import Observation
    from patients.services import clinical_row_create

    patient = response.patient
    if response.score is not None and questionnaire.total_code:
        threshold = alert_threshold(questionnaire)
        observation = Observation(
            patient=patient,
            code_system=questionnaire.total_system or definitions.LOINC,
            code=questionnaire.total_code,
            display=questionnaire.total_display or questionnaire.title,
            category="survey",
            value_quantity=Decimal(response.score),
            unit="{score}",
            reference_low=Decimal(0) if threshold else None,
            reference_high=Decimal(threshold - 1) if threshold else None,
            effective_at=now,
        )
        response.observation = clinical_row_create(row=observation)
    if response.alerted:
        response.task = alert_task_create(response=response, questionnaire=questionnaire, now=now)
    response.save(update_fields=["observation", "task", "updated_at"])


def alert_task_create(*, response: QuestionnaireResponse, questionnaire: Questionnaire, now: datetime) -> Any:
    """An urgent task, due today, for the care team's nurses (providers when nurses cannot hold
    tasks). The title names no score; the details (encrypted) say what was answered."""
    from patients.care.selectors import task_roles
    from patients.care.services import task_assign

    organization = require_current_organization()
    roles = task_roles()
    role = next((r for r in ("nurse", "provider", "coordinator") if r in roles), roles[0] if roles else "")
    answers = answers_of(response)
    item_alert = False
    for question in scoring.questions(questionnaire.resource):
        option = question.option(answers.get(question.link_id, ""))
        if question.link_id in questionnaire.alert_items and option is not None and (option.score or 0) > 0:
            item_alert = True
    details = [f"{questionnaire.title}: total {response.score if response.score is not None else 'incomplete'}"]
    if response.band:
        details[0] += f" ({response.band})"
    if item_alert:
        details.append("The patient answered above 'Not at all' to the question about self-harm: call them today.")
    details.append("The answers are under the patient's questionnaires; the patient was shown the crisis line.")
    return task_assign(
        patient=response.patient,
        title=ALERT_TITLE,
        due_date=now.astimezone(organization.zone).date(),
        assignee_role=role,
        priority="urgent",
        details="\n".join(details),
    )


# -- Imported responses -----------------------------------------------------------------------------


def response_fields_from_fhir(resource: Mapping[str, Any], *, authored: datetime) -> dict[str, Any]:
    """The row fields of a FHIR QuestionnaireResponse being imported (the patient is resolved by the
    importer): its definition when this organization has it (by canonical URL), the score recomputed
    from it, and the resource itself (encrypted)."""
    canonical = str(resource.get("questionnaire") or "")
    url, _, version = canonical.partition("|")
    questionnaire = Questionnaire.objects.filter(url=url, **({"version": version} if version else {})).first()
    fields: dict[str, Any] = {
        "questionnaire_id": questionnaire.pk if questionnaire else None,
        "questionnaire_url": url[:255],
        "status": str(resource.get("status") or ResponseStatus.COMPLETED),
        "resource": json.dumps({k: v for k, v in resource.items() if k not in ("id", "subject", "meta")}),
        "authored_at": authored,
    }
    if questionnaire is not None and fields["status"] == ResponseStatus.COMPLETED:
        answers = {}
        for item in resource.get("item") or []:
            for answer in item.get("answer") or []:
                code = (answer.get("valueCoding") or {}).get("code")
                if code:
                    answers[str(item.get("linkId"))] = str(code)
        result = scoring.score(
            questionnaire.resource,
            answers,
            bands=questionnaire.bands,
            alert_at=questionnaire.alert_at,
            alert_items=questionnaire.alert_items,
        )
        fields.update(score=result.total, band=result.band[:64], alerted=result.alert)
        fields["completed_at"] = fields["authored_at"]
    return fields
