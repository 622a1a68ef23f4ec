"""Outreach: channel settings, consent, templates, rules, the outbox and SMS conversations.

The outbox (`OutboundMessage`) is the schedule: one row per intended message, unique per
(organization, patient, rule, subject, channel, slot), so a rule evaluated twice, a beat that
runs twice or a redelivered task never creates or sends a message twice.
"""

from __future__ import annotations

from datetime import datetime, time

from auditlog.registry import auditlog
from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxLengthValidator
from django.db import models
from django.db.models import Q

from compliance.audit import register_phi
from healthcrm.crypto import BlindIndexField, EncryptedCharField, EncryptedTextField
from healthcrm.models import TenantModel


class MessageChannel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


# Callables, not time(8, 0): Django's check for fixed date/time defaults (fields.W161) fires for a
# literal time within 10 seconds of it, so `check --deploy --fail-level WARNING` failed at 08:00 and 21:00.
def quiet_start_default() -> time:
    return time(8, 0)


def quiet_end_default() -> time:
    return time(21, 0)


class ChannelSettings(TenantModel):
    """An organization's outreach settings: Twilio credentials (encrypted), sender, limits, etiquette."""

    sms_enabled = models.BooleanField(default=True)
    twilio_account_sid = models.CharField("Twilio account SID", max_length=64, blank=True)
    twilio_auth_token = EncryptedCharField("Twilio auth token", max_length=128, blank=True)
    sms_from_number = models.CharField("sender number", max_length=20, blank=True, help_text="E.164, e.g. +13125550100")
    messaging_service_sid = models.CharField("Messaging Service SID", max_length=64, blank=True)
    email_enabled = models.BooleanField(default=True)
    email_from = models.CharField("email from-address", max_length=200, blank=True)
    contact_phone = models.CharField("clinic contact phone (HELP replies)", max_length=32, blank=True)
    send_rate_per_second = models.PositiveIntegerField(
        default=10, help_text="Most messages per second this organization sends (the provider's limit)."
    )
    quiet_start = models.TimeField(
        default=quiet_start_default, help_text="Local time (the patient's) sending may start."
    )
    quiet_end = models.TimeField(default=quiet_end_default, help_text="Local time (the patient's) sending must stop.")
    cap_per_day = models.PositiveIntegerField(default=1, help_text="Non-urgent messages per patient per 24 h.")
    cap_per_week = models.PositiveIntegerField(default=3, help_text="Non-urgent messages per patient per 7 days.")
    max_attempts = models.PositiveIntegerField(default=6, help_text="Sends tried before a message is marked failed.")

    class Meta:
        verbose_name_plural = "channel settings"
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="channelsettings_one_per_org"),
            models.CheckConstraint(condition=Q(send_rate_per_second__gte=1), name="channelsettings_rate_positive"),
        ]

    def __str__(self) -> str:
        return f"Channel settings of organization #{self.organization_id}"


class ConsentStatus(models.TextChoices):
    OPTED_IN = "opted_in", "Opted in"
    OPTED_OUT = "opted_out", "Opted out"


class ConsentKind(models.TextChoices):
    """What a consent is for. The channel kinds share their values with `MessageChannel`."""

    TREATMENT = "treatment", "Treatment"
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"
    MARKETING = "marketing", "Marketing and education campaigns"
    RESEARCH = "research", "Research"
    DATA_SHARING = "data_sharing", "Data sharing with an EHR connection"


CHANNEL_KINDS = frozenset(MessageChannel.values)


class ConsentSource(models.TextChoices):
    STAFF = "staff", "Recorded by staff"
    SMS_KEYWORD = "sms_keyword", "SMS keyword"
    LINK = "link", "Unsubscribe link"
    IMPORT = "import", "Imported"
    INTAKE = "intake", "Intake form"
    SIGNED_FORM = "signed_form", "Signed consent form"


# What staff may give as the source of a change they record (the others are written by the system).
STAFF_CONSENT_SOURCES = (
    ConsentSource.STAFF,
    ConsentSource.SIGNED_FORM,
    ConsentSource.INTAKE,
    ConsentSource.IMPORT,
)


def _consent_checks(prefix: str) -> list[models.BaseConstraint]:
    """The state rules `Consent` and `ConsentChange` share (a change is a consent at one moment)."""
    return [
        models.CheckConstraint(condition=Q(status__in=ConsentStatus.values), name=f"{prefix}_status_valid"),
        models.CheckConstraint(condition=Q(kind__in=ConsentKind.values), name=f"{prefix}_kind_valid"),
        # Data sharing is always with someone; the other kinds are with the organization itself.
        models.CheckConstraint(
            condition=Q(kind=ConsentKind.DATA_SHARING, party__gt="")
            | (~Q(kind=ConsentKind.DATA_SHARING) & Q(party="")),
            name=f"{prefix}_party_iff_sharing",
            violation_error_message="Data sharing needs its EHR connection (and only data sharing has one).",
        ),
        # A withdrawal does not lapse: only a grant has an expiry.
        models.CheckConstraint(
            condition=Q(expires_at__isnull=True) | Q(status=ConsentStatus.OPTED_IN),
            name=f"{prefix}_expiry_on_grant",
            violation_error_message="Only a consent that is given can have an expiry date.",
        ),
        models.CheckConstraint(
            condition=Q(evidence_document__isnull=True) | Q(evidence_message__isnull=True),
            name=f"{prefix}_one_evidence",
            violation_error_message="Give one piece of evidence: a document or a message.",
        ),
    ]


class ConsentFields(models.Model):
    """What a consent says: its kind (and party), yes or no, where from, when, until when, and the proof.

    `party` names the other side of a data-sharing consent with a key owned by the layer that has
    the parties ("fhir-connection:<id>", integrations/fhir/sharing.py): engagement stays below it.
    Evidence is a patient document (a signed form) or a message the patient sent (an SMS keyword).
    """

    kind = models.CharField(max_length=16, choices=ConsentKind.choices)
    party = models.CharField(max_length=64, blank=True, default="")
    status = models.CharField(max_length=12, choices=ConsentStatus.choices)
    source = models.CharField(max_length=16, choices=ConsentSource.choices)
    changed_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    evidence_document = models.ForeignKey(
        "patients.PatientDocument", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evidence_message = models.ForeignKey(
        "ConversationMessage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        abstract = True

    def is_effective(self, now: datetime) -> bool:
        """Whether this record still counts: an expired consent counts as none at all."""
        return self.expires_at is None or self.expires_at > now

    @property
    def channel(self) -> str:
        """The channel of a channel consent ("" for the other kinds): the name before kinds existed."""
        return self.kind if self.kind in CHANNEL_KINDS else ""


class Consent(TenantModel, ConsentFields):
    """A patient's current consent for one kind (and party), with where, when, until when and the proof."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="consents")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "patient", "kind", "party"],
                name="consent_unique_per_patient_kind",
                violation_error_message="This patient already has a consent of this kind.",
            ),
            *_consent_checks("consent"),
        ]

    def __str__(self) -> str:
        return f"Consent #{self.pk}"


class ConsentChange(TenantModel, ConsentFields):
    """One change of a patient's consent, written by `consent_set` in the same transaction.

    The history behind `Consent` (which holds only the current value): every call, whatever its
    path (staff, SMS keyword, patient link, provider opt-out, intake, import), newest last, with the
    expiry and evidence given at the time. Rows before this table existed are not invented: the
    history starts when it was added.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="consent_changes")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=150, blank=True)  # outlives the actor's account
    # Why (a patient's words, "asked by phone"): may hold PHI, so encrypted.
    note = EncryptedTextField(max_length=500, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        constraints = _consent_checks("consentchange")
        indexes = [models.Index(fields=["organization", "patient", "-changed_at"], name="consentchange_patient")]

    def __str__(self) -> str:
        return f"Consent change #{self.pk}"


class MessageTemplate(TenantModel):
    """The text of a kind of message (`key`) in one language for one channel."""

    key = models.SlugField(max_length=64, help_text="What the message is, e.g. appointment_reminder.")
    language = models.CharField(max_length=35, default="en")
    channel = models.CharField(max_length=8, choices=MessageChannel.choices)
    subject = models.CharField(max_length=200, blank=True, help_text="Email only.")
    # TextField adds no validator for max_length (CharField does): the validator makes full_clean check it.
    body = models.TextField(max_length=5000, validators=[MaxLengthValidator(5000)])
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["key", "language", "channel"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "key", "language", "channel"],
                name="messagetemplate_unique_per_org",
                violation_error_message="A template for this message, language and channel already exists.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.language}, {self.channel})"


class RuleKind(models.TextChoices):
    APPOINTMENT_REMINDER = "appointment_reminder", "Appointment reminder"
    POST_VISIT = "post_visit", "Post-visit follow-up"
    MEDICATION_REFILL = "medication_refill", "Medication refill due"
    ADHERENCE = "adherence", "Daily adherence reminder"
    PREVENTIVE_RECALL = "preventive_recall", "Preventive-care recall"
    CARE_PLAN_UPDATE = "care_plan_update", "Care plan update notice"
    LAB_RESULTS = "lab_results", "Lab results available"
    CAMPAIGN = "campaign", "Education / wellness campaign"
    SURVEY = "survey", "Post-visit satisfaction survey"
    WAITLIST_OFFER = "waitlist_offer", "Waitlist: a freed slot offered"
    EDUCATION = "education", "Education on a new diagnosis, medication or care plan"
    QUESTIONNAIRE = "questionnaire", "Questionnaire (PHQ-9, GAD-7, ...)"


# Marketing-like outreach and daily reminders need an explicit opt-in; care messages go unless the
# patient opted out.
OPT_IN_KINDS = frozenset({RuleKind.CAMPAIGN, RuleKind.ADHERENCE})
# Campaigns are marketing or education: beyond the channel they need the patient's consent of that kind.
MARKETING_RULE_KINDS = frozenset({RuleKind.CAMPAIGN})


class Rule(TenantModel):
    """When to message whom: evaluated by the beat, materialized as outbox rows."""

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=24, choices=RuleKind.choices)
    template_key = models.SlugField(max_length=64)
    is_active = models.BooleanField(default=True)
    is_urgent = models.BooleanField(
        default=False, help_text="Urgent messages ignore frequency caps (quiet hours still apply)."
    )
    offsets_hours = ArrayField(
        models.PositiveIntegerField(),
        default=list,
        blank=True,
        help_text="Hours before the appointment, e.g. 72, 24, 2.",
    )
    appointment_types = ArrayField(
        models.CharField(max_length=32), default=list, blank=True, help_text="Leave empty for every type."
    )
    params = models.JSONField(default=dict, blank=True, help_text="Kind-specific options (cohort filter, schedule).")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name"],
                name="rule_name_unique_per_org",
                violation_error_message="A rule with this name already exists.",
            ),
            models.CheckConstraint(condition=Q(kind__in=RuleKind.values), name="rule_kind_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Scheduled"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class OutboundMessage(TenantModel):
    """One intended message. `next_attempt_at` is the schedule (quiet hours, caps and backoff move it)."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="outbound_messages")
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.PROTECT, related_name="messages")
    template_key = models.SlugField(max_length=64, blank=True)
    subject_type = models.CharField(max_length=32, help_text="What the message is about: appointment, care_plan, ...")
    subject_id = models.BigIntegerField(null=True, blank=True)
    channel = models.CharField(max_length=8, choices=MessageChannel.choices)
    slot = models.CharField(max_length=64, help_text="Which occurrence: '24h@<start>', a date, a reply id.")
    is_urgent = models.BooleanField(default=False)
    status = models.CharField(max_length=12, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    due_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Not worth sending after this.")
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Every claim counts in `attempts`; only the tries the provider answered count towards the
    # channel's max_attempts (`provider_attempts`): an outage or a crash never uses them up, the
    # message's useful life (expires_at, else ENGAGEMENT_GIVE_UP_AFTER) bounds those retries.
    attempts = models.PositiveIntegerField(default=0)
    provider_attempts = models.PositiveIntegerField(default=0)
    # A claim whose send timed out (outcome unknown) is settled by asking the provider from then on,
    # without waiting for the stale time a crashed worker needs.
    settle_at = models.DateTimeField(null=True, blank=True)
    # Filled at send time: the text actually sent and where to (PHI, encrypted).
    to_address = EncryptedCharField(max_length=254, blank=True)
    body = EncryptedTextField(max_length=10000, blank=True)
    provider_sid = models.CharField(max_length=64, blank=True)
    segments = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    # Reasons and provider error texts, never values (no PHI).
    status_reason = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-due_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "patient", "rule", "subject_type", "subject_id", "channel", "slot"],
                nulls_distinct=False,
                name="outbox_message_unique",
                violation_error_message="This message already exists.",
            ),
            models.CheckConstraint(condition=Q(status__in=OutboxStatus.values), name="outbox_status_valid"),
            models.CheckConstraint(condition=Q(channel__in=MessageChannel.values), name="outbox_channel_valid"),
        ]
        indexes = [
            # The due scan: pending rows of one organization by next attempt (partial: stays small).
            models.Index(
                fields=["organization", "next_attempt_at"],
                condition=Q(status="pending"),
                name="outbox_due_scan",
            ),
            # Stale claims (a worker died between claim and result).
            models.Index(fields=["organization", "claimed_at"], condition=Q(status="sending"), name="outbox_sending"),
            models.Index(fields=["organization", "provider_sid"], name="outbox_provider_sid"),
            models.Index(fields=["organization", "patient", "-due_at"], name="outbox_patient_due"),
            models.Index(fields=["organization", "status", "-due_at"], name="outbox_status_due"),
            # What was sent about a record (an appointment's reminders): analytics and the record's page.
            models.Index(fields=["organization", "subject_type", "subject_id"], name="outbox_subject"),
        ]

    def __str__(self) -> str:
        return f"Message #{self.pk}"


class Direction(models.TextChoices):
    INBOUND = "in", "Received"
    OUTBOUND = "out", "Sent"


class ConversationMessage(TenantModel):
    """An SMS received from (or a staff reply to) a phone number, shown in the conversation inbox."""

    patient = models.ForeignKey(
        "patients.Patient", null=True, blank=True, on_delete=models.CASCADE, related_name="conversation_messages"
    )
    direction = models.CharField(max_length=3, choices=Direction.choices)
    phone = EncryptedCharField(max_length=32)
    phone_bidx = BlindIndexField(source="phone", kind="phone")
    body = EncryptedTextField(max_length=1600)
    provider_sid = models.CharField(max_length=64, blank=True)
    outbound = models.ForeignKey(OutboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    keyword = models.CharField(
        max_length=16, blank=True, help_text="The keyword acted on (STOP, START, HELP, C, R; NPS for a survey score)."
    )
    read_at = models.DateTimeField(null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # A replayed inbound webhook stores nothing twice.
            models.UniqueConstraint(
                fields=["organization", "provider_sid"],
                condition=~Q(provider_sid=""),
                name="conversationmessage_sid_unique",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "patient", "created_at"], name="conversation_patient"),
            models.Index(fields=["organization", "read_at"], condition=Q(direction="in"), name="conversation_unread"),
        ]

    def __str__(self) -> str:
        return f"Conversation message #{self.pk}"


class LinkAction(models.TextChoices):
    CONFIRM = "confirm", "Confirm"
    CANCEL = "cancel", "Cancel"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
    SURVEY = "survey", "Satisfaction survey"
    EDUCATION = "education", "Education page"


class LinkUse(TenantModel):
    """A patient link that was used: one row per (message, action), ever.

    The unique constraint is what makes a confirm/cancel link single-use: of two simultaneous
    clicks, the second insert waits for the first and then fails, so exactly one acts.
    """

    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="link_uses")
    action = models.CharField(max_length=12, choices=LinkAction.choices)
    used_at = models.DateTimeField()

    class Meta:
        ordering = ["used_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "message", "action"],
                name="linkuse_once",
                violation_error_message="This link has already been used.",
            ),
            models.CheckConstraint(condition=Q(action__in=LinkAction.values), name="linkuse_action_valid"),
        ]

    def __str__(self) -> str:
        return f"Link use #{self.pk}"


class SurveyChannel(models.TextChoices):
    SMS_REPLY = "sms_reply", "SMS reply"
    LINK = "link", "Survey link"


# Net Promoter Score buckets of the 0-10 answer.
NPS_DETRACTOR_MAX = 6
NPS_PROMOTER_MIN = 9


class SurveyResponse(TenantModel):
    """A patient's answer to one post-visit survey message: NPS 0-10, optional CSAT 1-5 answers and
    an optional comment (PHI: encrypted, never shown to analysts).

    One per survey message (the unique constraint is what makes an SMS reply and a link, or two
    clicks, record one answer). The visit's practitioner and location are copied so satisfaction
    analytics group without joining the appointments."""

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="survey_responses")
    appointment = models.ForeignKey("patients.Appointment", on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="survey_responses")
    practitioner = models.ForeignKey(
        "patients.Practitioner", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    location = models.ForeignKey(
        "healthcrm.Location", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    nps = models.PositiveSmallIntegerField("likelihood to recommend (0-10)")
    csat_access = models.PositiveSmallIntegerField("ease of getting an appointment (1-5)", null=True, blank=True)
    csat_explain = models.PositiveSmallIntegerField("how well the team explained (1-5)", null=True, blank=True)
    comment = EncryptedTextField(max_length=2000, blank=True)
    channel = models.CharField(max_length=12, choices=SurveyChannel.choices)
    responded_at = models.DateTimeField()
    recovery_task = models.ForeignKey(
        "patients.CareTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-responded_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "message"],
                name="surveyresponse_one_per_message",
                violation_error_message="This survey has already been answered.",
            ),
            models.CheckConstraint(condition=Q(nps__gte=0, nps__lte=10), name="surveyresponse_nps_0_10"),
            models.CheckConstraint(
                condition=Q(csat_access__isnull=True) | Q(csat_access__gte=1, csat_access__lte=5),
                name="surveyresponse_csat_access_1_5",
            ),
            models.CheckConstraint(
                condition=Q(csat_explain__isnull=True) | Q(csat_explain__gte=1, csat_explain__lte=5),
                name="surveyresponse_csat_explain_1_5",
            ),
            models.CheckConstraint(condition=Q(channel__in=SurveyChannel.values), name="surveyresponse_channel_valid"),
        ]
        indexes = [
            models.Index(fields=["organization", "responded_at"], name="surveyresponse_org_time"),
        ]

    def __str__(self) -> str:
        return f"Survey response #{self.pk}"

    @property
    def is_detractor(self) -> bool:
        return self.nps <= NPS_DETRACTOR_MAX


class CallOutcome(models.TextChoices):
    REACHED = "reached", "Reached"
    VOICEMAIL = "voicemail", "Left voicemail"
    NO_ANSWER = "no_answer", "No answer"
    WRONG_NUMBER = "wrong_number", "Wrong number"
    DECLINED = "declined", "Declined"
    SCHEDULED = "scheduled", "Scheduled"


class CallLog(TenantModel):
    """A phone call to a patient about a care gap (`recall_key`: a key of engagement.recalls.RECALLS).

    With the recall messages sent for the gap (OutboundMessages of preventive_recall rules whose slot
    starts with "<recall key>:"), these are the gap's contact attempts on the worklist. The note may
    hold PHI (encrypted). The caller is SET_NULL with a snapshot of their name: the row outlives them.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="call_logs")
    recall_key = models.CharField(max_length=32)
    outcome = models.CharField(max_length=16, choices=CallOutcome.choices)
    note = EncryptedTextField(max_length=2000, blank=True)
    called_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    called_by_label = models.CharField(max_length=150, blank=True)
    called_at = models.DateTimeField()

    class Meta:
        ordering = ["-called_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(outcome__in=CallOutcome.values), name="calllog_outcome_valid"),
        ]
        indexes = [
            models.Index(fields=["organization", "patient", "recall_key", "called_at"], name="calllog_patient_recall"),
        ]

    def __str__(self) -> str:
        return f"Call log #{self.pk}"


class EngagementEventKind(models.TextChoices):
    OPENED = "opened", "Opened"
    ANSWERED = "answered", "Answered"


class EngagementEvent(TenantModel):
    """What a patient did with a message they were sent: opened its page, answered it.

    One row per (message, kind), ever: the first time is `first_at`; later opens raise `count` and
    move `last_at` (a conditional UPDATE, so two clicks together count twice and insert once).
    engagement.selectors.engagement_events lists them with the sends for the record and analytics.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="engagement_events")
    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=12, choices=EngagementEventKind.choices)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-first_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "message", "kind"],
                name="engagementevent_once_per_message_kind",
                violation_error_message="This event is already recorded for this message.",
            ),
            models.CheckConstraint(condition=Q(kind__in=EngagementEventKind.values), name="engagementevent_kind_valid"),
            models.CheckConstraint(condition=Q(count__gte=1), name="engagementevent_count_positive"),
        ]
        indexes = [models.Index(fields=["organization", "patient", "-first_at"], name="engagementevent_patient")]

    def __str__(self) -> str:
        return f"Engagement event #{self.pk}"


# The education library's models (engagement/education/models.py), loaded with the app's.
from engagement.education.models import EducationItem, EducationSend, EducationVersion  # noqa: E402

# Encrypted fields fully redacted in the change log; the rest audited as is.
for _model in (ChannelSettings, OutboundMessage, ConversationMessage, SurveyResponse, CallLog, ConsentChange):
    register_phi(_model)
# Who was sent what education, and what they opened: about a patient, audited like PHI.
for _about_patient in (EducationSend, EngagementEvent):
    register_phi(_about_patient)
for _audited in (Consent, MessageTemplate, Rule, EducationItem, EducationVersion):
    auditlog.register(_audited)


class AccessReportRequestSource(models.TextChoices):
    STAFF = "staff", "Staff, on the patient's behalf"
    PATIENT = "patient", "The patient, through the request form"


class AccessReportRequest(TenantModel):
    """A patient's request for their access report ("who viewed my record", issue 13 item 2).

    The patient gets a signed, expiring link (`engagement.access_reports.tokens`: ids only) to the
    contact on file; opening it asks for a one-time code sent to the phone or email on file. The
    code is never stored: `code_hash` is an HMAC of it keyed by the request (so equal codes of two
    requests differ), compared in constant time. `code_attempts` counts wrong codes for the current
    code, `failed_attempts` all of them (the request locks at ACCESS_REPORT_MAX_FAILED_ATTEMPTS);
    both move by a conditional UPDATE, the only write a wrong code makes.
    """

    patient = models.ForeignKey("patients.Patient", on_delete=models.CASCADE, related_name="access_report_requests")
    source = models.CharField(max_length=8, choices=AccessReportRequestSource.choices)
    channel = models.CharField(max_length=8, choices=MessageChannel.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_label = models.CharField(max_length=150, blank=True)
    link_expires_at = models.DateTimeField()
    message = models.ForeignKey(OutboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    code_hash = models.CharField(max_length=64, blank=True)
    code_channel = models.CharField(max_length=8, choices=MessageChannel.choices, blank=True)
    code_expires_at = models.DateTimeField(null=True, blank=True)
    code_attempts = models.PositiveSmallIntegerField(default=0)
    failed_attempts = models.PositiveSmallIntegerField(default=0)
    codes_sent = models.PositiveSmallIntegerField(default=0)
    last_code_sent_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_viewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=AccessReportRequestSource.values), name="accessreportrequest_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(channel__in=MessageChannel.values), name="accessreportrequest_channel_valid"
            ),
        ]
        indexes = [models.Index(fields=["organization", "patient", "-created_at"], name="accessreportreq_patient")]

    def __str__(self) -> str:
        return f"Access report request #{self.pk}"


# The code's hash never reaches the change log (a hash of 6 digits is guessable offline).
auditlog.register(AccessReportRequest, exclude_fields=["code_hash"])
# Questionnaires live in their own module (a sub-domain of outreach), registered on this app.
from engagement.questionnaires.models import Questionnaire, QuestionnaireResponse, ResponseStatus  # noqa: E402, F401

register_phi(QuestionnaireResponse)
auditlog.register(Questionnaire)
