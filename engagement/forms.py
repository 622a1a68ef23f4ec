from __future__ import annotations

import copy
from typing import Any

import django_filters
from django import forms

from engagement.models import (
    STAFF_CONSENT_SOURCES,
    ChannelSettings,
    ConsentKind,
    ConsentStatus,
    MessageChannel,
    MessageTemplate,
    OutboundMessage,
    OutboxStatus,
    Rule,
    RuleKind,
)
from engagement.recalls import RECALLS
from engagement.services import risk_params_problem
from engagement.services.staff_messages import EMAIL_MAX_LENGTH, SMS_MAX_LENGTH
from patients.models import AppointmentType


class OutboxFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=OutboxStatus.choices, empty_label="Any status")
    channel = django_filters.ChoiceFilter(choices=MessageChannel.choices, empty_label="Any channel")
    rule = django_filters.ModelChoiceFilter(queryset=lambda request: Rule.objects.all(), empty_label="Any rule")
    due_from = django_filters.DateFilter(
        field_name="due_at", lookup_expr="date__gte", label="Due from", widget=forms.DateInput(attrs={"type": "date"})
    )
    due_to = django_filters.DateFilter(
        field_name="due_at", lookup_expr="date__lte", label="Due until", widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = OutboundMessage
        fields = ["status", "channel", "rule", "due_from", "due_to"]


def _int_list(value: str) -> list[int]:
    try:
        numbers = sorted({int(part) for part in value.replace(" ", "").split(",") if part}, reverse=True)
    except ValueError:
        raise forms.ValidationError("Give whole numbers of hours separated by commas, e.g. 72, 24, 2.") from None
    if any(n <= 0 or n > 24 * 60 for n in numbers):
        raise forms.ValidationError("Offsets are between 1 and 1440 hours.")
    return numbers


# The options each rule kind reads from `Rule.params`, as form fields named "<kind>-<param>" (the
# same param may mean something else for another kind). Only the chosen kind's fields are kept.
def _hours(label: str, help_text: str = "", low: int = 1, high: int = 24 * 60) -> forms.IntegerField:
    return forms.IntegerField(required=False, min_value=low, max_value=high, label=label, help_text=help_text)


KIND_OPTIONS: dict[str, dict[str, forms.Field]] = {
    RuleKind.APPOINTMENT_REMINDER: {
        "extra_when_risk": forms.IntegerField(
            required=False,
            min_value=1,
            max_value=99,
            label="Extra reminder when the no-show risk is at least (%)",
            help_text="Empty: no extra reminder. E.g. 30.",
        ),
        "extra_offset_hours": _hours("Extra reminder, this many hours ahead of the visit", "Default 48."),
    },
    RuleKind.POST_VISIT: {"hours_after": _hours("Hours after the visit", "Default 24.")},
    RuleKind.MEDICATION_REFILL: {"days_before": _hours("Days before the refill is due", "Default 7.", high=90)},
    RuleKind.PREVENTIVE_RECALL: {
        "recall": forms.ChoiceField(
            required=False,
            label="Recall",
            choices=[("", "Choose a recall")],  # filled in __init__
        )
    },
    RuleKind.CAMPAIGN: {
        "send_on": forms.DateField(
            required=False,
            label="Send on",
            help_text="The clinic's local date; empty: as soon as the rule is saved.",
            widget=forms.DateInput(attrs={"type": "date"}),
        ),
        "condition_code": forms.CharField(
            required=False, max_length=32, label="Patients with the condition (SNOMED code)", help_text="e.g. 44054006"
        ),
        "languages": forms.CharField(
            required=False, max_length=120, label="Preferred languages", help_text="Language codes, e.g. es, en."
        ),
        "age_min": _hours("Aged at least", low=0, high=130),
        "age_max": _hours("Aged at most", low=0, high=130),
        "cohort_id": forms.IntegerField(
            required=False, min_value=1, label="Saved cohort number", help_text="From Analytics > Cohorts."
        ),
    },
    RuleKind.SURVEY: {
        "delay_hours": _hours("Hours after the visit", "Default 2.", low=0, high=24 * 7),
        "max_age_days": _hours("Visits of the last (days)", "Default 3.", high=30),
    },
    RuleKind.QUESTIONNAIRE: {
        "questionnaire": forms.SlugField(
            required=False, max_length=64, label="Questionnaire", help_text="Its short name, e.g. phq-9, gad-7."
        ),
        "condition_code": forms.CharField(
            required=False, max_length=32, label="Patients with the condition (code)", help_text="e.g. 35489007"
        ),
        "every_days": _hours("Once every (days)", "Default 90.", high=730),
    },
}


class RuleForm(forms.Form):
    """The rule editor: a template of this clinic's, appointment types from the list, and the
    chosen kind's options as fields (saved as `Rule.params`)."""

    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=RuleKind.choices)
    template_key = forms.ChoiceField(
        label="Template",
        help_text="One of this clinic's templates (one per language and channel, under Templates).",
        error_messages={"invalid_choice": "Choose one of this clinic's templates; add it under Templates first."},
    )
    offsets = forms.CharField(
        required=False,
        max_length=200,
        label="Hours before the appointment",
        help_text="Comma-separated, e.g. 72, 24, 2.",
    )
    appointment_types = forms.MultipleChoiceField(
        required=False,
        choices=AppointmentType.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every type.",
    )
    is_urgent = forms.BooleanField(required=False, label="Time-critical (ignores frequency caps)")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, template_keys: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        template_field = self.fields["template_key"]
        assert isinstance(template_field, forms.ChoiceField)
        template_field.choices = [("", "Choose a template"), *((key, key) for key in template_keys)]
        for kind, fields in KIND_OPTIONS.items():
            for param, field in fields.items():
                self.fields[f"{kind}-{param}"] = copy.deepcopy(field)
        recall = self.fields[f"{RuleKind.PREVENTIVE_RECALL}-recall"]
        assert isinstance(recall, forms.ChoiceField)
        recall.choices = [("", "Choose a recall"), *((key, r.name) for key, r in RECALLS.items())]

    def common_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if "-" not in name]

    def kind_fieldsets(self) -> list[tuple[str, str, list[forms.BoundField]]]:
        """(kind, label, fields) for each kind that has options, in the kind list's order."""
        labels = dict(RuleKind.choices)
        return [
            (kind, labels[kind], [self[f"{kind}-{param}"] for param in KIND_OPTIONS[kind]])
            for kind in RuleKind.values
            if kind in KIND_OPTIONS
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind")
        options: dict[str, Any] = {}
        for param in KIND_OPTIONS.get(kind or "", {}):
            value: Any = data.get(f"{kind}-{param}")
            if value is None or value == "":
                continue
            if param == "extra_when_risk":
                value = value / 100
            elif param == "send_on":
                value = value.isoformat()
            elif param == "languages":
                value = [part.strip().lower() for part in value.replace(" ", ",").split(",") if part.strip()]
            options[param] = value
        if kind == RuleKind.APPOINTMENT_REMINDER:
            problem = risk_params_problem(options)
            if problem:
                self.add_error(f"{kind}-extra_when_risk", problem.replace("extra_when_risk", "the risk"))
        if kind == RuleKind.QUESTIONNAIRE and not options.get("questionnaire"):
            self.add_error(f"{kind}-questionnaire", "Name the questionnaire this rule sends.")
        if kind == RuleKind.PREVENTIVE_RECALL and not options.get("recall"):
            self.add_error(f"{kind}-recall", "Choose which recall this rule sends.")
        age_min, age_max = options.get("age_min"), options.get("age_max")
        if age_min is not None and age_max is not None and age_min > age_max:
            self.add_error(f"{RuleKind.CAMPAIGN}-age_max", "The oldest age is below the youngest.")
        data["options"] = options
        return data

    def clean_offsets(self) -> list[int]:
        return _int_list(self.cleaned_data.get("offsets") or "")

    @classmethod
    def initial_for(cls, rule: Rule) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "name": rule.name,
            "kind": rule.kind,
            "template_key": rule.template_key,
            "offsets": ", ".join(str(n) for n in rule.offsets_hours),
            "appointment_types": list(rule.appointment_types),
            "is_urgent": rule.is_urgent,
            "is_active": rule.is_active,
        }
        for param in KIND_OPTIONS.get(rule.kind, {}):
            value = (rule.params or {}).get(param)
            if value is None:
                continue
            if param == "extra_when_risk":
                value = round(float(value) * 100)
            elif param == "languages":
                value = ", ".join(value)
            initial[f"{rule.kind}-{param}"] = value
        return initial


class TemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["key", "language", "channel", "subject", "body", "is_active"]
        widgets = {"body": forms.Textarea(attrs={"rows": 6})}


class ChannelSettingsForm(forms.ModelForm):
    twilio_auth_token = forms.CharField(
        required=False,
        max_length=128,
        widget=forms.PasswordInput(render_value=False),
        label="Twilio auth token",
        help_text="Stored encrypted; leave empty to keep the current one.",
    )

    class Meta:
        model = ChannelSettings
        fields = [
            "sms_enabled",
            "twilio_account_sid",
            "sms_from_number",
            "messaging_service_sid",
            "email_enabled",
            "email_from",
            "contact_phone",
            "send_rate_per_second",
            "quiet_start",
            "quiet_end",
            "cap_per_day",
            "cap_per_week",
            "max_attempts",
        ]
        widgets = {
            "quiet_start": forms.TimeInput(attrs={"type": "time"}),
            "quiet_end": forms.TimeInput(attrs={"type": "time"}),
        }


class StaffMessageForm(forms.Form):
    """A one-off SMS or email to the patient (the patient record's Messages tab). `key` is a one-time
    token put in the form when it is shown: submitting the same form twice queues one message."""

    channel = forms.ChoiceField(choices=MessageChannel.choices, widget=forms.RadioSelect, label="Send by")
    body = forms.CharField(
        label="Message",
        max_length=EMAIL_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=f"Text messages up to {SMS_MAX_LENGTH:,} characters, emails up to {EMAIL_MAX_LENGTH:,}. "
        "Write only what the patient would want on a lock screen.",
    )
    # Its format is checked by the service; its errors go at the top of the form (a hidden field
    # cannot show its own).
    key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if self.errors.pop("key", None):
            self.add_error(None, "This form has expired: open the Messages tab again.")
        body = (data.get("body") or "").strip()
        if data.get("channel") == MessageChannel.SMS and len(body) > SMS_MAX_LENGTH:
            self.add_error("body", f"Keep a text message to {SMS_MAX_LENGTH:,} characters (it has {len(body):,}).")
        return data


class ConsentRecordForm(forms.Form):
    """A consent staff record on the patient's Consent tab (through `consent_set`): the kind (and
    for data sharing the EHR connection), yes or no, how the patient told us, until when, and the
    evidence (one of the patient's documents, or a message they sent)."""

    kind = forms.ChoiceField(choices=ConsentKind.choices, label="Consent to")
    party = forms.ChoiceField(
        choices=[], required=False, label="Shared with", help_text="For data sharing: the EHR connection."
    )
    status = forms.ChoiceField(choices=ConsentStatus.choices, widget=forms.RadioSelect, label="Consent")
    source = forms.ChoiceField(
        choices=[(s.value, s.label) for s in STAFF_CONSENT_SOURCES],
        label="How the patient told us",
    )
    expires_on = forms.DateField(
        required=False,
        label="Valid through (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="The last day the consent counts; after it, it counts as none. Only a given consent expires.",
    )
    evidence_document = forms.TypedChoiceField(
        choices=[], required=False, coerce=int, empty_value=None, label="Evidence: a document"
    )
    evidence_message = forms.TypedChoiceField(
        choices=[], required=False, coerce=int, empty_value=None, label="Evidence: a message from the patient"
    )
    note = forms.CharField(
        label="Note (optional)",
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why, in a few words (e.g. asked by phone). At most 500 characters.",
    )

    def __init__(
        self,
        *args: Any,
        parties: list[tuple[str, str]] | None = None,
        documents: list[tuple[int, str]] | None = None,
        patient_messages: list[tuple[int, str]] | None = None,
        today: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        for name, choices, empty in (
            ("party", parties, "---------"),
            ("evidence_document", documents, "None"),
            ("evidence_message", patient_messages, "None"),
        ):
            field = self.fields[name]
            if isinstance(field, forms.ChoiceField):
                field.choices = [("", empty), *(choices or [])]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        sharing = data.get("kind") == ConsentKind.DATA_SHARING
        if sharing and not data.get("party"):
            self.add_error("party", "Choose the EHR connection the data is shared with.")
        if not sharing:
            data["party"] = ""
        expires_on = data.get("expires_on")
        if expires_on is not None and data.get("status") != ConsentStatus.OPTED_IN:
            self.add_error("expires_on", "Only a consent that is given can expire.")
        elif expires_on is not None and self.today is not None and expires_on < self.today:
            self.add_error("expires_on", "Choose today or a later day.")
        if data.get("evidence_document") and data.get("evidence_message"):
            self.add_error("evidence_message", "Give one piece of evidence: a document or a message.")
        return data


class ReplyForm(forms.Form):
    body = forms.CharField(max_length=1600, widget=forms.Textarea(attrs={"rows": 3}), label="Reply")


_CSAT = [(n, str(n)) for n in range(1, 6)]


class SurveyForm(forms.Form):
    """The public post-visit survey: NPS (required), two CSAT questions and a comment (optional)."""

    nps = forms.TypedChoiceField(
        label="How likely are you to recommend us to a friend or family member? (0 = not at all, 10 = extremely)",
        choices=[(n, str(n)) for n in range(0, 11)],
        coerce=int,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose a number from 0 to 10.", "invalid_choice": "Choose a number from 0 to 10."},
    )
    csat_access = forms.TypedChoiceField(
        label="How easy was it to get an appointment? (1 = very hard, 5 = very easy)",
        choices=_CSAT,
        coerce=int,
        empty_value=None,
        required=False,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose a number from 1 to 5, or leave it empty."},
    )
    csat_explain = forms.TypedChoiceField(
        label="How well did the team explain things? (1 = poorly, 5 = very well)",
        choices=_CSAT,
        coerce=int,
        empty_value=None,
        required=False,
        widget=forms.RadioSelect,
        error_messages={"invalid_choice": "Choose a number from 1 to 5, or leave it empty."},
    )
    comment = forms.CharField(
        label="Anything else you would like to tell us? (optional)",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
