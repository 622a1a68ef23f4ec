from __future__ import annotations

from typing import Any

import django_filters
from django import forms

from engagement.models import (
    ChannelSettings,
    MessageChannel,
    MessageTemplate,
    OutboundMessage,
    OutboxStatus,
    Rule,
    RuleKind,
)
from engagement.services import risk_params_problem
from engagement.services.staff_messages import EMAIL_MAX_LENGTH, SMS_MAX_LENGTH


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


class RuleForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=RuleKind.choices)
    template_key = forms.SlugField(max_length=64, label="Template", help_text="e.g. appointment_reminder")
    offsets = forms.CharField(
        required=False,
        max_length=200,
        label="Hours before the appointment",
        help_text="Comma-separated, e.g. 72, 24, 2.",
    )
    appointment_types = forms.CharField(
        required=False,
        max_length=500,
        help_text="Comma-separated appointment types (follow_up, annual, ...); empty: all.",
    )
    is_urgent = forms.BooleanField(required=False, label="Time-critical (ignores frequency caps)")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    options = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=(
            'Kind-specific, as JSON. Appointment reminders: {"extra_when_risk": 0.3, "extra_offset_hours": 48} '
            "(one extra reminder when the no-show risk is at least 30 %). "
            'Refills: {"days_before": 7}. Recalls: {"recall": "flu_shot"} '
            '(hba1c, annual_wellness, flu_shot, mammography). Follow-ups: {"hours_after": 24}. '
            'Campaigns: {"send_on": "2026-12-01", "condition_code": "44054006", "languages": ["es"], '
            '"age_min": 40, "age_max": 70}; a saved cohort (analytics): {"cohort_id": 3}. '
            'Surveys: {"delay_hours": 2, "max_age_days": 3}.'
        ),
    )

    def clean_options(self) -> dict[str, Any]:
        value = self.cleaned_data.get("options") or {}
        if not isinstance(value, dict):
            raise forms.ValidationError('Options must be a JSON object, e.g. {"days_before": 7}.')
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == RuleKind.APPOINTMENT_REMINDER and isinstance(data.get("options"), dict):
            problem = risk_params_problem(data["options"])
            if problem:
                self.add_error("options", problem)
        return data

    def clean_offsets(self) -> list[int]:
        return _int_list(self.cleaned_data.get("offsets") or "")

    def clean_appointment_types(self) -> list[str]:
        raw = self.cleaned_data.get("appointment_types") or ""
        return [part.strip() for part in raw.split(",") if part.strip()]

    @classmethod
    def initial_for(cls, rule: Rule) -> dict[str, Any]:
        return {
            "name": rule.name,
            "kind": rule.kind,
            "template_key": rule.template_key,
            "offsets": ", ".join(str(n) for n in rule.offsets_hours),
            "appointment_types": ", ".join(rule.appointment_types),
            "is_urgent": rule.is_urgent,
            "is_active": rule.is_active,
            "options": rule.params or None,
        }


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
