"""Reads for outreach, always in the current organization (tenant managers and RLS)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.module_loading import import_string

from engagement.models import (
    ChannelSettings,
    Consent,
    ConsentChange,
    ConsentKind,
    ConsentStatus,
    ConversationMessage,
    Direction,
    EngagementEvent,
    EngagementEventKind,
    MessageChannel,
    MessageTemplate,
    OutboundMessage,
    OutboxStatus,
    Rule,
    RuleKind,
    SurveyResponse,
)
from healthcrm.tenancy import require_current_organization

# Appointment statuses that still deserve a reminder.
REMINDABLE = ("booked", "confirmed")


def channel_settings_get() -> ChannelSettings:
    """The current organization's settings (created with the defaults on first use)."""
    organization = require_current_organization()
    found = ChannelSettings.objects.filter(organization=organization).first()
    if found is None:
        found, _ = ChannelSettings.objects.get_or_create(organization=organization)
    return found


Consents = dict[tuple[int, str], str]


def _in_force(now: datetime | None = None) -> Q:
    """Consents that still count: an expired one counts as none at all."""
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now())


def consents_for(patient_ids: list[int], *, now: datetime | None = None) -> Consents:
    """{(patient id, kind): status} of the consents in force (no party: channels, campaigns, ...)."""
    rows = (
        Consent.objects.filter(patient_id__in=patient_ids, party="")
        .filter(_in_force(now))
        .values_list("patient_id", "kind", "status")
    )
    return {(p, k): s for p, k, s in rows}


def sharing_consented(*, patient_ids: list[int], party: str, now: datetime | None = None) -> set[int]:
    """Which of these patients consent, now, to sharing their data with `party`."""
    rows = Consent.objects.filter(
        patient_id__in=patient_ids, kind=ConsentKind.DATA_SHARING, party=party, status=ConsentStatus.OPTED_IN
    ).filter(_in_force(now))
    return set(rows.values_list("patient_id", flat=True))


@dataclass(frozen=True)
class KindConsent:
    """One line on a patient's consent screen: a kind (and party) with its current record (None: nothing)."""

    kind: str
    label: str
    party: str
    current: Consent | None
    expired: bool = False


def consent_kinds(*, patient: Any, party_labels: dict[str, str] | None = None) -> list[KindConsent]:
    """Every kind with the patient's current consent on it, then one line per data-sharing party
    they have a record for (one query). `party_labels` names the parties (key -> label)."""
    now = timezone.now()
    current = {
        (c.kind, c.party): c
        for c in Consent.objects.filter(patient_id=patient.pk).select_related("evidence_document", "evidence_message")
    }
    labels = party_labels or {}

    def line(kind: ConsentKind, party: str = "") -> KindConsent:
        found = current.get((kind.value, party))
        label = f"{kind.label}: {labels.get(party, party)}" if party else kind.label
        return KindConsent(kind.value, label, party, found, bool(found and not found.is_effective(now)))

    lines = [line(kind) for kind in ConsentKind if kind != ConsentKind.DATA_SHARING]
    sharing = sorted(party for kind, party in current if kind == ConsentKind.DATA_SHARING)
    return lines + [line(ConsentKind.DATA_SHARING, party) for party in sharing]


def consent_parties() -> dict[str, str]:
    """The parties a patient may consent to share data with ({key: name}), from the layer that has
    them (ENGAGEMENT_CONSENT_PARTIES, a dotted path: engagement sits below integrations)."""
    path = getattr(settings, "ENGAGEMENT_CONSENT_PARTIES", "")
    return dict(import_string(path)()) if path else {}


def consent_evidence_messages(*, patient: Any, limit: int = 50) -> list[ConversationMessage]:
    """Messages the patient sent (newest first): what a consent can cite as its evidence."""
    rows = ConversationMessage.objects.filter(patient_id=patient.pk, direction=Direction.INBOUND)
    return list(rows.order_by("-created_at", "-id")[:limit])


HISTORY_LIMIT = 200


def consent_history(*, patient: Any, limit: int = HISTORY_LIMIT) -> list[ConsentChange]:
    """The patient's consent changes, newest first (at most `limit`; one query)."""
    rows = (
        ConsentChange.objects.filter(patient_id=patient.pk)
        .select_related("actor", "evidence_document", "evidence_message")
        .order_by("-changed_at", "-id")
    )
    return list(rows[:limit])


def is_opted_out(*, patient_id: int, channel: str) -> bool:
    """Whether the patient's opt-out of this channel is on record (an opt-out never expires)."""
    return Consent.objects.filter(
        patient_id=patient_id, kind=channel, party="", status=ConsentStatus.OPTED_OUT
    ).exists()


def template_for(*, key: str, channel: str, language: str) -> MessageTemplate | None:
    """The template in the patient's language, else its base language, else English."""
    wanted = [language, language.split("-")[0], "en"]
    found = {
        t.language: t
        for t in MessageTemplate.objects.filter(key=key, channel=channel, is_active=True, language__in=wanted)
    }
    return next((found[lang] for lang in wanted if lang in found), None)


def template_keys() -> list[str]:
    """The keys of the current organization's active templates (what a rule may send), sorted."""
    return sorted(set(MessageTemplate.objects.filter(is_active=True).values_list("key", flat=True)))


def medications_refill_due(*, start: Any, end: Any) -> QuerySet[Any]:
    """Active medications whose refill is due from `start` to `end` (dates, inclusive). Uses the
    (organization, status, refill_due) index; only plain columns are loaded (no name decrypted)."""
    from patients.models import Medication

    return Medication.objects.filter(status="active", refill_due__gte=start, refill_due__lte=end).only(
        "id", "patient_id", "refill_due"
    )


# -- Appointments (patients.Appointment, read through here only) --------------------------------


def appointments_for_reminders(*, rule: Rule, now: datetime, horizon: timedelta) -> QuerySet[Any]:
    """Booked or confirmed appointments starting after now and before now + horizon, of the
    rule's types (all when none). Uses the (organization, status, starts_at) index."""
    from patients.models import Appointment

    qs = Appointment.objects.filter(status__in=REMINDABLE, starts_at__gt=now, starts_at__lte=now + horizon)
    if rule.appointment_types:
        qs = qs.filter(appointment_type__in=rule.appointment_types)
    return qs.select_related("patient").only(
        "id",
        "starts_at",
        "patient_id",
        "appointment_type",
        "patient__id",
        "patient__phone_mobile",
        "patient__email",
        "patient__preferred_channel",
        "patient__is_active",
        "patient__organization_id",
    )


def appointments_remindable(*, ids: list[int], now: datetime, rule: Rule) -> QuerySet[Any]:
    """These appointments, when still booked or confirmed, starting after now, of the rule's types."""
    from patients.models import Appointment

    qs = Appointment.objects.filter(pk__in=ids, status__in=REMINDABLE, starts_at__gt=now)
    if rule.appointment_types:
        qs = qs.filter(appointment_type__in=rule.appointment_types)
    return qs.only("id", "starts_at", "patient_id", "appointment_type").order_by("starts_at", "id")


def appointments_completed_since(*, since: datetime, rule: Rule) -> QuerySet[Any]:
    from patients.models import Appointment

    qs = Appointment.objects.filter(status="completed", ends_at__gte=since, ends_at__lte=timezone.now())
    if rule.appointment_types:
        qs = qs.filter(appointment_type__in=rule.appointment_types)
    return qs.select_related("patient")


def appointments_completed_between(*, start: datetime, end: datetime, rule: Rule) -> QuerySet[Any]:
    """Completed visits that ended from `start` to `end`, of the rule's types (all when none)."""
    from patients.models import Appointment

    qs = Appointment.objects.filter(status="completed", ends_at__gte=start, ends_at__lte=end)
    if rule.appointment_types:
        qs = qs.filter(appointment_type__in=rule.appointment_types)
    return qs.only("id", "patient_id", "ends_at", "appointment_type")


def appointment_get(pk: int | None, *, for_update: bool = False) -> Any:
    """One appointment of the current organization, or None; `for_update` locks its row (not the joined ones)."""
    from patients.models import Appointment

    if not pk:
        return None
    qs = Appointment.objects.select_related("location", "patient").filter(pk=pk)
    return (qs.select_for_update(of=("self",)) if for_update else qs).first()


WAITLIST_OFFER_SUBJECT = "waitlist_offer"


def waitlist_offer_get(pk: int | None) -> Any:
    """A waitlist offer (patients.WaitlistOffer) with its slot, or None."""
    from patients.scheduling.selectors import waitlist_offer_get as offer_get

    return offer_get(pk) if pk else None


def next_appointment_for(
    patient_id: int, *, within: timedelta = timedelta(days=14), statuses: tuple[str, ...] = ("booked",)
) -> Any:
    """The patient's next booked appointment (for a 'C' reply; `statuses` for an 'R'), or None."""
    from patients.models import Appointment

    now = timezone.now()
    return (
        Appointment.objects.filter(
            patient_id=patient_id, status__in=statuses, starts_at__gt=now, starts_at__lte=now + within
        )
        .order_by("starts_at")
        .first()
    )


# -- Screens --------------------------------------------------------------------------------------


def outbox_list() -> QuerySet[OutboundMessage]:
    return OutboundMessage.objects.select_related("rule", "patient").defer("body", "to_address")


def communication_history(*, patient: Any, limit: int = 50) -> list[dict[str, Any]]:
    """Outbox messages, SMS conversation and survey answers of one patient, newest first (patient page)."""
    outbound = (
        OutboundMessage.objects.filter(patient_id=patient.pk)
        .select_related("rule", "sent_by")
        .order_by("-due_at")[:limit]
    )
    inbound = ConversationMessage.objects.filter(patient_id=patient.pk, direction=Direction.INBOUND).order_by(
        "-created_at"
    )[:limit]
    answers = SurveyResponse.objects.filter(patient_id=patient.pk).order_by("-responded_at")[:limit]
    items: list[dict[str, Any]] = [{"at": m.sent_at or m.due_at, "kind": "out", "message": m} for m in outbound] + [
        {"at": m.created_at, "kind": "in", "message": m} for m in inbound
    ]
    # Survey answers, with their comment: for the staff who follow a detractor up (never analysts).
    items += [{"at": r.responded_at, "kind": "survey", "message": r} for r in answers]
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]


@dataclass
class Thread:
    patient_id: int | None
    phone_bidx: str
    last_at: datetime
    unread: int
    patient: Any = None


def conversation_threads(*, limit: int = 100) -> list[Thread]:
    """One line per patient (or unknown number) with messages, newest first, with unread counts."""
    rows = (
        ConversationMessage.objects.values("patient_id", "phone_bidx")
        .annotate(
            last_at=Max("created_at"),
            unread=Count("id", filter=Q(direction=Direction.INBOUND, read_at__isnull=True)),
        )
        .order_by("-last_at")[:limit]
    )
    threads = [Thread(r["patient_id"], r["phone_bidx"], r["last_at"], r["unread"]) for r in rows]
    from patients.models import Patient

    patients = Patient.objects.in_bulk([t.patient_id for t in threads if t.patient_id])
    for thread in threads:
        thread.patient = patients.get(thread.patient_id)
    return threads


def conversation_for(*, patient_id: int) -> QuerySet[ConversationMessage]:
    return ConversationMessage.objects.filter(patient_id=patient_id).order_by("created_at", "id")


def pending_for_patient(*, patient_id: int, channel: str | None = None) -> QuerySet[OutboundMessage]:
    qs = OutboundMessage.objects.filter(patient_id=patient_id, status=OutboxStatus.PENDING)
    return qs.filter(channel=channel) if channel else qs


# -- Satisfaction surveys -------------------------------------------------------------------------

SURVEY_SUBJECT = "survey"
SENT_STATUSES = (OutboxStatus.SENDING, OutboxStatus.SENT, OutboxStatus.DELIVERED)


def surveyed_appointment_ids(appointment_ids: list[int]) -> set[int]:
    """The visits that already have a survey message (any rule, channel or status): one survey a visit."""
    return set(
        OutboundMessage.objects.filter(subject_type=SURVEY_SUBJECT, subject_id__in=appointment_ids).values_list(
            "subject_id", flat=True
        )
    )


def latest_sms_survey_for(*, patient_ids: list[int], sent_after: datetime) -> OutboundMessage | None:
    """The most recent survey text message sent to one of these patients after `sent_after`, or None."""
    return (
        OutboundMessage.objects.filter(
            patient_id__in=patient_ids,
            subject_type=SURVEY_SUBJECT,
            channel=MessageChannel.SMS,
            status__in=SENT_STATUSES,
            sent_at__gt=sent_after,
        )
        .select_related("patient")
        .order_by("-sent_at", "-id")
        .first()
    )


def survey_answered(message: OutboundMessage) -> bool:
    return SurveyResponse.objects.filter(message=message).exists()


def survey_messages(*, since: datetime | None = None) -> list[dict[str, Any]]:
    """Survey messages (every status) changed since `since` (all when None), or whose answer was:
    id, status, sent_at and the visit's practitioner and location. Ids and times only."""
    from patients.models import Appointment

    messages = OutboundMessage.objects.filter(subject_type=SURVEY_SUBJECT)
    if since is not None:
        answered = SurveyResponse.objects.filter(updated_at__gte=since).values("message_id")
        messages = messages.filter(Q(updated_at__gte=since) | Q(pk__in=answered))
    visit = Appointment.objects.filter(pk=OuterRef("subject_id"))
    return list(
        messages.annotate(
            visit_practitioner_id=Subquery(visit.values("practitioner_id")[:1]),
            visit_location_id=Subquery(visit.values("location_id")[:1]),
        )
        .order_by("pk")
        .values("id", "status", "sent_at", "visit_practitioner_id", "visit_location_id")
    )


def survey_scores_for(message_ids: list[int]) -> list[dict[str, Any]]:
    """The scores (never the comments) of the responses to these messages, one dict each."""
    return list(
        SurveyResponse.objects.filter(message_id__in=message_ids).values(
            "message_id", "practitioner_id", "location_id", "nps", "csat_access", "csat_explain"
        )
    )


@dataclass
class ScheduledMessage:
    """A reminder an active rule will queue (an hour before it is due), not in the outbox yet."""

    due_at: datetime
    appointment_id: int
    starts_at: datetime
    offset_hours: int
    patient: Any
    rule: Rule
    channel: str | None  # None: the patient cannot be reached (no consent, address or preference)


def outbox_scheduled(
    *,
    after: datetime,
    due_from: datetime | None = None,
    due_until: datetime | None = None,
    rule_id: int | None = None,
) -> QuerySet[Any]:
    """What the active appointment-reminder rules will queue later: one row (appointment id, patient
    id, start, `due_at`, `rule_id`, `offset_hours`) per remindable visit and offset whose reminder
    is due after `after` (the materializer queues a reminder an hour before it is due) and is not
    in the outbox already (queued early, as the demo seed does), in [due_from, due_until), by due
    time. One indexed query per rule offset, combined with UNION ALL: a page of it is one query,
    whatever the number of visits."""
    from django.db.models import DateTimeField, Exists, ExpressionWrapper, F, IntegerField, Value

    from patients.models import Appointment

    rules = Rule.objects.filter(is_active=True, kind=RuleKind.APPOINTMENT_REMINDER).order_by("pk")
    if rule_id is not None:
        rules = rules.filter(pk=rule_id)
    parts = []
    for rule in rules:
        for offset in sorted(set(rule.offsets_hours), reverse=True):
            delta = timedelta(hours=offset)
            visits = Appointment.objects.filter(
                status__in=REMINDABLE, starts_at__gt=after + delta, patient__is_active=True
            )
            if rule.appointment_types:
                visits = visits.filter(appointment_type__in=rule.appointment_types)
            if due_from is not None:
                visits = visits.filter(starts_at__gte=due_from + delta)
            if due_until is not None:
                visits = visits.filter(starts_at__lt=due_until + delta)
            queued = OutboundMessage.objects.filter(
                subject_type="appointment",
                subject_id=OuterRef("pk"),
                patient_id=OuterRef("patient_id"),
                rule_id=rule.pk,
                due_at=ExpressionWrapper(OuterRef("starts_at") - Value(delta), output_field=DateTimeField()),
            )
            visits = visits.filter(~Exists(queued))
            parts.append(
                visits.annotate(
                    due_at=ExpressionWrapper(F("starts_at") - Value(delta), output_field=DateTimeField()),
                    rule_id=Value(rule.pk, output_field=IntegerField()),
                    offset_hours=Value(offset, output_field=IntegerField()),
                )
                .values("pk", "patient_id", "starts_at", "due_at", "rule_id", "offset_hours")
                .order_by()
            )
    if not parts:
        return Appointment.objects.none().values("pk")
    first, *rest = parts
    return first.union(*rest, all=True).order_by("due_at", "pk") if rest else first.order_by("due_at", "pk")


def outbox_scheduled_rows(rows: list[dict[str, Any]]) -> list[ScheduledMessage]:
    """A page of `outbox_scheduled` with its patients, rules and the channel each would use now."""
    from engagement import etiquette
    from patients.models import Patient

    patients = Patient.objects.in_bulk({row["patient_id"] for row in rows})
    rules = Rule.objects.in_bulk({row["rule_id"] for row in rows})
    consents = consents_for(list(patients))
    settings_ = channel_settings_get()
    return [
        ScheduledMessage(
            due_at=row["due_at"],
            appointment_id=row["pk"],
            starts_at=row["starts_at"],
            offset_hours=row["offset_hours"],
            patient=patients[row["patient_id"]],
            rule=rules[row["rule_id"]],
            channel=etiquette.choose_channel(patients[row["patient_id"]], consents, settings_),
        )
        for row in rows
        if row["patient_id"] in patients and row["rule_id"] in rules
    ]


# -- Engagement: what a patient was sent, opened and answered (issue 15 item 3) -------------------

# Message id -> the title shown for it (one query for a list of ids).
EngagementTitles = Callable[[list[int]], dict[int, str]]


@dataclass(frozen=True)
class EngagementContent:
    """A kind of content messages carry (their subject_type) that patients open or answer."""

    subject_type: str
    label: str
    titles: EngagementTitles
    answerable: bool = False  # questionnaires: counted in completion rates


_CONTENT: dict[str, EngagementContent] = {}


def register_engagement_content(
    subject_type: str, label: str, titles: EngagementTitles, *, answerable: bool = False
) -> None:
    """Make messages of `subject_type` part of the engagement view and analytics (education here;
    questionnaires register theirs with answerable=True and record EngagementEvent "answered")."""
    _CONTENT[subject_type] = EngagementContent(subject_type, label, titles, answerable)


def engagement_contents() -> list[EngagementContent]:
    return list(_CONTENT.values())


@dataclass(frozen=True)
class EngagementRow:
    """One message of a patient's engagement view: what, when sent, when first opened, answered."""

    message_id: int
    subject_type: str
    content: str
    title: str
    channel: str
    status: str
    due_at: datetime
    sent_at: datetime | None
    opened_at: datetime | None = None
    open_count: int = 0
    answered_at: datetime | None = None


def engagement_events(*, patient: Any, limit: int = 100) -> list[EngagementRow]:
    """The patient's messages that carry content (every registered kind), newest first, each with
    its first open (and how many times opened) and its answer: a query for the messages, one for
    the events, one per content kind for the titles."""
    messages = list(
        OutboundMessage.objects.filter(patient_id=patient.pk, subject_type__in=list(_CONTENT)).order_by(
            "-due_at", "-id"
        )[:limit]
    )
    ids = [m.pk for m in messages]
    events: dict[tuple[int, str], EngagementEvent] = {
        (e.message_id, e.kind): e for e in EngagementEvent.objects.filter(message_id__in=ids)
    }
    titles: dict[int, str] = {}
    for content in _CONTENT.values():
        wanted = [m.pk for m in messages if m.subject_type == content.subject_type]
        if wanted:
            titles.update(content.titles(wanted))
    rows = []
    for m in messages:
        opened = events.get((m.pk, EngagementEventKind.OPENED))
        answered = events.get((m.pk, EngagementEventKind.ANSWERED))
        rows.append(
            EngagementRow(
                message_id=m.pk,
                subject_type=m.subject_type,
                content=_CONTENT[m.subject_type].label,
                title=titles.get(m.pk, ""),
                channel=m.get_channel_display(),
                status=m.get_status_display(),
                due_at=m.due_at,
                sent_at=m.sent_at,
                opened_at=opened.first_at if opened else None,
                open_count=opened.count if opened else 0,
                answered_at=answered.first_at if answered else None,
            )
        )
    return rows


@dataclass(frozen=True)
class ReachRow:
    """Education sent in a period, for one item, language and condition: sent and opened."""

    item_key: str
    title: str
    language: str
    condition_code: str  # the diagnosis that triggered it, else the item's first condition code, or ""
    sent: int
    opened: int


def education_reach(*, start: datetime, end: datetime) -> list[ReachRow]:
    """Education messages sent in [start, end) and how many were opened, grouped by item, language
    and condition (one aggregate query and one for the titles). For analytics: counts only."""
    from engagement.education.models import EducationSend, EducationVersion

    grouped = (
        EducationSend.objects.filter(message__sent_at__gte=start, message__sent_at__lt=end)
        .values("item_id", "item__key", "item__condition_codes", "language", "trigger", "trigger_code")
        .annotate(
            sent=Count("id", distinct=True),
            opened=Count("message__events", filter=Q(message__events__kind=EngagementEventKind.OPENED)),
        )
        .order_by()
    )
    rows = list(grouped)
    titles: dict[int, str] = {}
    for item_id, language, title in EducationVersion.objects.filter(
        item_id__in={r["item_id"] for r in rows}
    ).values_list("item_id", "language", "title"):
        if language == "en" or item_id not in titles:
            titles[item_id] = title
    merged: dict[tuple[str, str, str], list[int]] = {}
    for r in rows:
        condition = r["trigger_code"] if r["trigger"] == "condition" else next(iter(r["item__condition_codes"]), "")
        counts = merged.setdefault((r["item__key"], r["language"], condition), [0, 0])
        counts[0] += r["sent"]
        counts[1] += r["opened"]
    keys = {r["item__key"]: r["item_id"] for r in rows}
    return [
        ReachRow(key, titles.get(keys[key], key), language, condition, sent, opened)
        for (key, language, condition), (sent, opened) in sorted(merged.items())
    ]


@dataclass(frozen=True)
class CompletionRow:
    subject_type: str
    content: str
    answerable: bool
    sent: int
    opened: int
    answered: int


def engagement_completion(*, start: datetime, end: datetime) -> list[CompletionRow]:
    """Per registered content kind: messages sent in [start, end), how many were opened and how many
    answered (one aggregate query). Questionnaire completion rate = answered / sent."""
    counts = {
        row["subject_type"]: row
        for row in OutboundMessage.objects.filter(subject_type__in=list(_CONTENT), sent_at__gte=start, sent_at__lt=end)
        .values("subject_type")
        .annotate(
            sent=Count("id", distinct=True),
            opened=Count("events", filter=Q(events__kind=EngagementEventKind.OPENED)),
            answered=Count("events", filter=Q(events__kind=EngagementEventKind.ANSWERED)),
        )
        .order_by()
    }
    return [
        CompletionRow(
            c.subject_type,
            c.label,
            c.answerable,
            counts.get(c.subject_type, {}).get("sent", 0),
            counts.get(c.subject_type, {}).get("opened", 0),
            counts.get(c.subject_type, {}).get("answered", 0),
        )
        for c in _CONTENT.values()
    ]


def _education_titles(message_ids: list[int]) -> dict[int, str]:
    from engagement.education.selectors import education_titles

    return education_titles(message_ids)


def _questionnaire_titles(message_ids: list[int]) -> dict[int, str]:
    from engagement.questionnaires.selectors import questionnaire_titles

    return questionnaire_titles(message_ids)


register_engagement_content("education", "Education", _education_titles)
register_engagement_content("questionnaire", "Questionnaire", _questionnaire_titles, answerable=True)
