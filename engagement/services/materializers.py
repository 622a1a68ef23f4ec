"""Materializers: what each kind of rule puts in the outbox now. One function per rule kind, found
through MATERIALIZERS; those that reach a cohort of patients read it in chunks (chunked_rows_create),
so a network of millions never loads (or decrypts) more than CHUNK patients at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from engagement import etiquette, recalls, selectors
from engagement.models import ChannelSettings, OutboundMessage, Rule, RuleKind
from engagement.services.outbox import (
    outbox_enqueue,
    outbox_row_for,
    outbox_rows_create,
    reminder_slot,
    risk_reminder_slot,
)
from healthcrm.tenancy import require_current_organization
from patients.models import Patient

# How far ahead reminders are materialized beyond the largest offset, and how late a missed
# slot may still be sent (a beat that was down for a while).
REMINDER_LOOKAHEAD = timedelta(hours=1)
LATE_GRACE = timedelta(minutes=30)
ADHERENCE_DEFAULT_TIME = time(9, 0)
CHUNK = 1000

Consents = dict[tuple[int, str], str]


def chunked_rows_create(
    patient_ids: list[int], rows_for: Callable[[Any, Consents], Iterable[OutboundMessage | None]]
) -> int:
    """Load the patients CHUNK at a time with their consents, ask `rows_for(patient, consents)` for
    their rows (None: not this patient) and insert each chunk's rows. Returns how many were offered."""
    created = 0
    for index in range(0, len(patient_ids), CHUNK):
        patients = Patient.objects.in_bulk(patient_ids[index : index + CHUNK])
        consents = selectors.consents_for(list(patients))
        rows = [row for patient in patients.values() for row in rows_for(patient, consents) if row is not None]
        created += outbox_rows_create(rows)
    return created


def reminders_materialize(rule: Rule, now: datetime) -> int:
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    horizon = timedelta(hours=max(rule.offsets_hours)) + REMINDER_LOOKAHEAD
    appointments = list(selectors.appointments_for_reminders(rule=rule, now=now, horizon=horizon))
    consents = selectors.consents_for([a.patient_id for a in appointments])
    # The patients' sending preferences (plain columns; nothing decrypted but the address check).
    patients = Patient.objects.in_bulk({a.patient_id for a in appointments})
    rows = []
    for appointment in appointments:
        patient = patients[appointment.patient_id]
        if not patient.is_active:
            continue
        channel = etiquette.choose_channel(patient, consents, settings_)
        if channel is None:
            continue
        zone = etiquette.patient_zone(patient, organization)
        start, end = etiquette.sending_window(patient, settings_)
        for offset in sorted(set(rule.offsets_hours), reverse=True):
            due_at = appointment.starts_at - timedelta(hours=offset)
            if due_at > now + REMINDER_LOOKAHEAD or due_at < now - LATE_GRACE:
                continue
            rows.append(
                OutboundMessage(
                    organization=organization,
                    patient_id=patient.pk,
                    rule=rule,
                    template_key=rule.template_key,
                    subject_type="appointment",
                    subject_id=appointment.pk,
                    channel=channel,
                    slot=reminder_slot(offset, appointment.starts_at),
                    # Reminders are time-bound (they expire at the start): frequency caps never hold them.
                    is_urgent=True,
                    due_at=due_at,
                    next_attempt_at=etiquette.next_allowed(due_at, zone, start, end),
                    expires_at=appointment.starts_at,
                )
            )
    return outbox_rows_create(rows)


RISK_DEFAULT_OFFSET_HOURS = 48


def risk_params_problem(params: dict[str, Any]) -> str:
    """What is wrong with an appointment reminder's extra-reminder options ('' when nothing):
    params.extra_when_risk a probability in (0, 1), params.extra_offset_hours whole hours 1-1440."""
    threshold, offset = params.get("extra_when_risk"), params.get("extra_offset_hours")
    if threshold is None:
        return "extra_offset_hours needs extra_when_risk (e.g. 0.3)." if offset is not None else ""
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 < threshold < 1:
        return "extra_when_risk must be a no-show risk between 0 and 1, e.g. 0.3."
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int) or not 1 <= offset <= 1440):
        return "extra_offset_hours must be whole hours between 1 and 1440, e.g. 48."
    return ""


def risk_reminders_enqueue(*, scores: dict[int, float], now: datetime) -> int:
    """The extra reminder for visits at high no-show risk. Analytics calls this after scoring with
    {appointment id: score} (engagement never reads the model). Every active appointment reminder
    rule with params.extra_when_risk gives each visit of its types, still booked or confirmed and
    scoring at or above it, one message params.extra_offset_hours (48) before the start, or now when
    that has passed. Slot "risk48h@<start>": once per visit and start whatever the channel (a
    rescheduled visit gets a new one; the old one is cancelled at send time like any reminder).
    Consent, the patient's window and quiet hours apply as for any message; like the rule's own
    reminders it expires at the start and is not held by the frequency caps. Returns how many rows
    were offered."""
    rules = [
        r
        for r in Rule.objects.filter(kind=RuleKind.APPOINTMENT_REMINDER, is_active=True)
        if not risk_params_problem(r.params) and r.params.get("extra_when_risk") is not None
    ]
    if not rules or not scores:
        return 0
    settings_ = selectors.channel_settings_get()
    offered = 0
    for rule in rules:
        threshold = float(rule.params["extra_when_risk"])
        offset = int(rule.params.get("extra_offset_hours") or RISK_DEFAULT_OFFSET_HOURS)
        wanted = [pk for pk, score in scores.items() if score >= threshold]
        appointments = list(selectors.appointments_remindable(ids=wanted, now=now, rule=rule))
        done = set(
            OutboundMessage.objects.filter(
                rule=rule, subject_type="appointment", subject_id__in=[a.pk for a in appointments]
            ).values_list("subject_id", "slot")
        )
        patients = Patient.objects.in_bulk({a.patient_id for a in appointments})
        consents = selectors.consents_for(list(patients))
        rows = []
        for appointment in appointments:
            slot = risk_reminder_slot(offset, appointment.starts_at)
            if (appointment.pk, slot) in done:
                continue  # already scheduled (or sent) on another channel or an earlier scoring
            row = outbox_row_for(
                rule=rule,
                patient=patients[appointment.patient_id],
                consents=consents,
                settings_=settings_,
                subject_type="appointment",
                subject_id=appointment.pk,
                slot=slot,
                due_at=max(appointment.starts_at - timedelta(hours=offset), now),
                expires_at=appointment.starts_at,
            )
            if row is not None:
                row.is_urgent = True  # time-bound like the rule's reminders
                rows.append(row)
        offered += outbox_rows_create(rows)
    return offered


def post_visit_materialize(rule: Rule, now: datetime) -> int:
    delay = timedelta(hours=int(rule.params.get("hours_after", 24)))
    created = 0
    for appointment in selectors.appointments_completed_since(since=now - delay - timedelta(days=1), rule=rule):
        due_at = appointment.ends_at + delay
        if due_at > now + REMINDER_LOOKAHEAD:
            continue
        message = outbox_enqueue(
            patient=appointment.patient,
            rule=rule,
            subject_type="appointment",
            subject_id=appointment.pk,
            slot="follow-up",
            due_at=max(due_at, now),
        )
        created += message is not None
    return created


def refills_materialize(rule: Rule, now: datetime) -> int:
    """One message per active medication whose refill is due within `params.days_before` days
    (slot: the refill date, so a new refill date gets a new message). The message never names
    the medication: the templates only know the first name and the clinic."""
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    today = now.astimezone(organization.zone).date()
    days = int(rule.params.get("days_before", 7))
    medications = list(selectors.medications_refill_due(start=today, end=today + timedelta(days=days)))
    patients = Patient.objects.in_bulk({m.patient_id for m in medications})
    consents = selectors.consents_for(list(patients))
    rows = []
    for medication in medications:
        refill_end = datetime.combine(medication.refill_due + timedelta(days=1), time(0), tzinfo=organization.zone)
        row = outbox_row_for(
            rule=rule,
            patient=patients[medication.patient_id],
            consents=consents,
            settings_=settings_,
            subject_type="medication",
            subject_id=medication.pk,
            slot=medication.refill_due.isoformat(),
            due_at=now,
            expires_at=refill_end,
        )
        if row is not None:
            rows.append(row)
    return outbox_rows_create(rows)


def recall_materialize(rule: Rule, now: datetime) -> int:
    """Preventive-care recall `params.recall` (a key of engagement.recalls.RECALLS): one message
    per due patient per period (slot: the period key, e.g. "2026-Q4")."""
    recall = recalls.RECALLS.get(rule.params.get("recall", ""))
    if recall is None:
        return 0
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    local_now = now.astimezone(organization.zone)
    if not recall.in_season(local_now.date()):
        return 0
    slot = f"{recall.key}:{recall.period_key(local_now.date())}"
    # Patients already messaged for this period are not loaded (or decrypted) again.
    done = set(OutboundMessage.objects.filter(rule=rule, slot=slot).values_list("patient_id", flat=True))

    def rows_for(patient: Any, consents: Consents) -> list[OutboundMessage | None]:
        if not recall.patient_matches(patient, local_now.date()):
            return []
        return [
            outbox_row_for(
                rule=rule,
                patient=patient,
                consents=consents,
                settings_=settings_,
                subject_type="recall",
                subject_id=None,
                slot=slot,
                due_at=now,
            )
        ]

    return chunked_rows_create(sorted(recall.due_patient_ids(local_now) - done), rows_for)


def adherence_materialize(rule: Rule, now: datetime) -> int:
    """The daily medication-adherence reminder, at the patient's chosen time (the start of their
    contact window; 09:00 when they gave none) in their time zone, to patients with an active
    medication who opted in (a daily message needs consent). One per patient and local day (slot:
    the date); today's and tomorrow's are offered so no day is missed between scans; each expires
    12 hours after its time. It names no medication, and it is exempt from the frequency caps like
    other reminders the patient asked for."""
    organization = require_current_organization()
    settings_ = selectors.channel_settings_get()
    ids = sorted(set(Patient.objects.filter(is_active=True, medications__status="active").values_list("pk", flat=True)))

    def rows_for(patient: Any, consents: Consents) -> list[OutboundMessage | None]:
        zone = etiquette.patient_zone(patient, organization)
        at = patient.contact_window_start or ADHERENCE_DEFAULT_TIME
        today = now.astimezone(zone).date()
        rows: list[OutboundMessage | None] = []
        for day in (today, today + timedelta(days=1)):
            due = datetime.combine(day, at, tzinfo=zone)
            if due + timedelta(hours=12) <= now:
                continue  # today's time is long gone
            row = outbox_row_for(
                rule=rule,
                patient=patient,
                consents=consents,
                settings_=settings_,
                subject_type="adherence",
                subject_id=None,
                slot=day.isoformat(),
                due_at=due,
                expires_at=due + timedelta(hours=12),
            )
            if row is not None:
                row.is_urgent = True  # asked for by the patient: not counted against the caps
            rows.append(row)
        return rows

    return chunked_rows_create(ids, rows_for)


def cohort_patient_ids(cohort_id: Any) -> Iterable[int] | None:
    """The patient ids of the current organization's saved cohort `cohort_id` through the
    ENGAGEMENT_COHORT_RESOLVER extension point (ids or a lazy queryset of ids, used as a filter);
    None when there is no such cohort, or no resolver."""
    path = getattr(settings, "ENGAGEMENT_COHORT_RESOLVER", "")
    if not path:
        return None
    resolver: Callable[[Any], Iterable[int] | None] = import_string(path)
    return resolver(cohort_id)


def campaign_materialize(rule: Rule, now: datetime) -> int:
    """An education or wellness campaign to a cohort, once, on `params.send_on` (the organization's
    local date; at once when absent), to patients who opted in to the channel (campaigns are not
    care messages). Cohort: `params.condition_code` (an active condition), `params.languages`
    (preferred languages), `params.age_min` / `params.age_max` (birth dates are encrypted: decrypted
    only for the patients the other filters select), `params.cohort_id` (a saved cohort of this
    organization, through ENGAGEMENT_COHORT_RESOLVER; a cohort gone since sends nothing). Consent,
    channel and caps apply as to any campaign. Slot: "campaign:<send date>", so one message per
    patient per sending."""
    organization = require_current_organization()
    today = now.astimezone(organization.zone).date()
    send_on = rule.params.get("send_on") or rule.created_at.astimezone(organization.zone).date().isoformat()
    try:
        if date.fromisoformat(str(send_on)) > today:
            return 0
    except ValueError:
        return 0  # rule_save refuses a malformed date; an old row must not break the scan
    slot = f"campaign:{send_on}"
    cohort = Patient.objects.filter(is_active=True)
    if rule.params.get("condition_code"):
        cohort = cohort.filter(
            conditions__code=str(rule.params["condition_code"]),
            conditions__clinical_status__in=("active", "recurrence", "relapse"),
        )
    if rule.params.get("languages"):
        cohort = cohort.filter(preferred_language__in=list(rule.params["languages"]))
    if rule.params.get("cohort_id") is not None:
        members = cohort_patient_ids(rule.params["cohort_id"])
        if members is None:
            return 0
        cohort = cohort.filter(pk__in=members)
    done = OutboundMessage.objects.filter(rule=rule, slot=slot).values_list("patient_id", flat=True)
    ids = sorted(set(cohort.exclude(pk__in=done).values_list("pk", flat=True)))
    age_min, age_max = rule.params.get("age_min"), rule.params.get("age_max")
    settings_: ChannelSettings = selectors.channel_settings_get()

    def rows_for(patient: Any, consents: Consents) -> list[OutboundMessage | None]:
        if age_min is not None or age_max is not None:
            age = recalls.age_on(patient.date_of_birth, today)
            if (age_min is not None and age < int(age_min)) or (age_max is not None and age > int(age_max)):
                return []
        return [
            outbox_row_for(
                rule=rule,
                patient=patient,
                consents=consents,
                settings_=settings_,
                subject_type="campaign",
                subject_id=rule.pk,
                slot=slot,
                due_at=now,
            )
        ]

    return chunked_rows_create(ids, rows_for)


def survey_materialize(rule: Rule, now: datetime) -> int:
    """One satisfaction survey per completed visit, `params.delay_hours` (default 2) after it ended,
    for visits that ended in the last `params.max_age_days` (default 3) days; it expires that many
    days after the visit (a survey held by quiet hours or caps that long is not worth sending). A
    visit that already has a survey message (of any survey rule, on any channel) gets no other: the
    outbox's unique key holds the channel, so a changed channel preference must not add a second
    one. Sent through the outbox like every message: consent, quiet hours and caps apply."""
    delay = timedelta(hours=int(rule.params.get("delay_hours", 2)))
    max_age = timedelta(days=int(rule.params.get("max_age_days", 3)))
    settings_ = selectors.channel_settings_get()
    visits = list(selectors.appointments_completed_between(start=now - max_age, end=now - delay, rule=rule))
    done = selectors.surveyed_appointment_ids([v.pk for v in visits])
    visits = [v for v in visits if v.pk not in done]
    patients = Patient.objects.in_bulk({v.patient_id for v in visits})
    consents = selectors.consents_for(list(patients))
    rows = []
    for visit in visits:
        row = outbox_row_for(
            rule=rule,
            patient=patients[visit.patient_id],
            consents=consents,
            settings_=settings_,
            subject_type=selectors.SURVEY_SUBJECT,
            subject_id=visit.pk,
            slot="survey",
            due_at=visit.ends_at + delay,
            expires_at=visit.ends_at + max_age,
        )
        if row is not None:
            rows.append(row)
    return outbox_rows_create(rows)


def questionnaire_materialize(rule: Rule, now: datetime) -> int:
    """A questionnaire to a cohort, once per period (engagement/questionnaires/services.py)."""
    from engagement.questionnaires.services import questionnaire_materialize as materialize

    return materialize(rule, now)


# Rule kind -> what puts its messages in the outbox. Kinds absent here (care-plan update, lab
# results) are enqueued by the services that change what they announce (notice_enqueue).
MATERIALIZERS: dict[str, Callable[[Rule, datetime], int]] = {
    RuleKind.APPOINTMENT_REMINDER: reminders_materialize,
    RuleKind.POST_VISIT: post_visit_materialize,
    RuleKind.MEDICATION_REFILL: refills_materialize,
    RuleKind.PREVENTIVE_RECALL: recall_materialize,
    RuleKind.CAMPAIGN: campaign_materialize,
    RuleKind.ADHERENCE: adherence_materialize,
    RuleKind.SURVEY: survey_materialize,
    RuleKind.QUESTIONNAIRE: questionnaire_materialize,
}
