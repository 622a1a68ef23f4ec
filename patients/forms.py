from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.utils import timezone

from patients.models import (
    BLOOD_PRESSURE,
    ICD10CM,
    SNOMED,
    AccessFlag,
    Allergy,
    Channel,
    Condition,
    Coverage,
    Medication,
    Patient,
    PatientIdentifier,
)
from patients.services import OBSERVATION_PRESETS, default_channel

CHANNEL_RULE = (
    "Reminders go by text message when there is a mobile number and the patient agrees to texts; "
    "otherwise by email when there is an address and they agree to email; otherwise no outreach."
)


class PatientForm(forms.ModelForm):
    date_of_birth = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    # What the patient agreed to at intake: recorded as consents, and they choose the preferred
    # channel (patients.services.default_channel).
    sms_consent = forms.BooleanField(required=False, label="Agrees to text messages")
    email_consent = forms.BooleanField(required=False, label="Agrees to email")
    # Shown only with a possible-duplicate warning: the deliberate "this is another person".
    create_anyway = forms.BooleanField(
        required=False, label="Create anyway: I checked, this is a different person from the records listed"
    )

    class Meta:
        model = Patient
        fields = ["mrn", "given_name", "family_name", "date_of_birth", "sex", "phone_mobile", "email"]
        widgets = {"phone_mobile": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"})}

    def channel_label(self) -> str:
        """The preferred channel these answers give (shown on the form; the service decides the same)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        channel = default_channel(
            phone_mobile=data.get("phone_mobile") or "",
            email=data.get("email") or "",
            sms_consent=bool(data.get("sms_consent")),
            email_consent=bool(data.get("email_consent")),
        )
        return str(Channel(channel).label)

    def clean_date_of_birth(self) -> date:
        value = self.cleaned_data["date_of_birth"]
        if value > date.today():
            raise forms.ValidationError("The date of birth cannot be in the future.")
        if value.year < 1900:
            raise forms.ValidationError("Enter a date of birth after 1900.")
        return value


class PatientSearchForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=100,
        label="Find a patient",
        help_text=(
            "Name (every word: 3 letters or more, or an initial beside a whole name, in any order), "
            "MRN or its number, phone or its last 7 or 10 digits, email, or date of birth."
        ),
    )


class PatientEditForm(PatientForm):
    """Every field of the record staff may change; validated again (constraints) by the service."""

    # Consent after intake is changed on its own (outreach's consent records), not here.
    sms_consent = None  # type: ignore[assignment]
    email_consent = None  # type: ignore[assignment]
    create_anyway = None  # type: ignore[assignment]

    class Meta:
        model = Patient
        fields = [
            "mrn",
            "given_name",
            "family_name",
            "preferred_name",
            "date_of_birth",
            "sex",
            "gender_identity",
            "pronouns",
            "phone_mobile",
            "phone_home",
            "email",
            "preferred_language",
            "preferred_channel",
            "contact_window_start",
            "contact_window_end",
            "timezone",
            "address_line1",
            "address_line2",
            "address_city",
            "address_state",
            "address_postal_code",
            "address_country",
            "emergency_contact_name",
            "emergency_contact_relationship",
            "emergency_contact_phone",
        ]
        widgets = {
            "phone_mobile": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
            "phone_home": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
            "emergency_contact_phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
            "contact_window_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "contact_window_end": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
        }


class MergeSearchForm(forms.Form):
    """Find the surviving record (POSTed: search terms never go into URLs)."""

    q = forms.CharField(
        max_length=100,
        label="Find the record to keep",
        help_text="MRN or its number, name, phone or date of birth (the patient search).",
    )


class MergeChoiceForm(forms.Form):
    """The record to keep (an id of this organization, checked by the guarded fetch) and, to merge,
    the deliberate confirmation."""

    survivor = forms.IntegerField(min_value=1, max_value=2**63 - 1, widget=forms.HiddenInput)
    confirm = forms.BooleanField(
        required=False, label="I checked that both records are the same person; merge them (this cannot be undone)"
    )


class IdentifierForm(forms.ModelForm):
    class Meta:
        model = PatientIdentifier
        fields = ["system", "value"]
        labels = {"system": "Issuing system", "value": "Identifier"}


class CoverageForm(forms.ModelForm):
    class Meta:
        model = Coverage
        fields = ["payer_name", "member_id", "group_number", "valid_from", "valid_to", "is_primary"]
        labels = {"payer_name": "Payer (insurer)", "is_primary": "Primary coverage"}
        widgets = {name: forms.DateInput(attrs={"type": "date"}) for name in ("valid_from", "valid_to")}

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        start, end = data.get("valid_from"), data.get("valid_to")
        if start and end and end < start:
            self.add_error("valid_to", "The coverage cannot end before it starts.")
        return data


class ConditionForm(forms.ModelForm):
    code_system = forms.ChoiceField(choices=[(SNOMED, "SNOMED CT"), (ICD10CM, "ICD-10-CM")], label="Code system")

    class Meta:
        model = Condition
        fields = ["code_system", "code", "display", "onset_date", "clinical_status"]
        labels = {"display": "Description"}
        widgets = {"onset_date": forms.DateInput(attrs={"type": "date"})}

    def clean_onset_date(self) -> date | None:
        value = self.cleaned_data.get("onset_date")
        if value and value > date.today():
            raise forms.ValidationError("The onset date cannot be in the future.")
        return value


class MedicationForm(forms.ModelForm):
    class Meta:
        model = Medication
        fields = ["name", "code", "dose_text", "schedule_text", "start_date", "end_date", "refill_due", "status"]
        labels = {"code": "RxNorm code", "dose_text": "Dose", "schedule_text": "Schedule"}
        widgets = {name: forms.DateInput(attrs={"type": "date"}) for name in ("start_date", "end_date", "refill_due")}


class AllergyForm(forms.ModelForm):
    class Meta:
        model = Allergy
        fields = ["substance_display", "substance_code", "reaction", "criticality"]
        labels = {"substance_display": "Substance", "substance_code": "Substance code (SNOMED CT)"}
        widgets = {"reaction": forms.Textarea(attrs={"rows": 2})}


class ObservationForm(forms.Form):
    """One measurement; blood pressure is entered as systolic and diastolic."""

    code = forms.ChoiceField(
        label="Measurement", choices=[(code, preset[0]) for code, preset in OBSERVATION_PRESETS.items()]
    )
    value_quantity = forms.DecimalField(
        label="Value", required=False, max_digits=12, decimal_places=4, help_text="Not for blood pressure."
    )
    systolic = forms.DecimalField(
        required=False, min_value=20, max_value=300, decimal_places=0, help_text="Blood pressure only (mm[Hg])."
    )
    diastolic = forms.DecimalField(
        required=False, min_value=10, max_value=200, decimal_places=0, help_text="Blood pressure only (mm[Hg])."
    )
    effective_at = forms.DateTimeField(
        label="Measured at", widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        code = data.get("code")
        if code == BLOOD_PRESSURE:
            for name in ("systolic", "diastolic"):
                if data.get(name) is None and name not in self.errors:
                    self.add_error(name, "Enter the systolic and diastolic values.")
            if (
                data.get("systolic") is not None
                and data.get("diastolic") is not None
                and data["diastolic"] >= data["systolic"]
            ):
                self.add_error("diastolic", "The diastolic value must be below the systolic value.")
        elif code and data.get("value_quantity") is None and "value_quantity" not in self.errors:
            self.add_error("value_quantity", "Enter a value.")
        effective_at = data.get("effective_at")
        if effective_at and effective_at > timezone.now():
            self.add_error("effective_at", "The measurement cannot be in the future.")
        return data


class AccessFlagForm(forms.Form):
    access_flag = forms.ChoiceField(
        choices=AccessFlag.choices,
        required=False,
        label="Flag",
        help_text="Every opening of a flagged record raises an anomaly alert for compliance.",
    )
