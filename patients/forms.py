from __future__ import annotations

from datetime import date

from django import forms

from patients.models import Patient


class PatientForm(forms.ModelForm):
    date_of_birth = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    class Meta:
        model = Patient
        fields = ["mrn", "given_name", "family_name", "date_of_birth", "sex", "phone_mobile", "email"]
        widgets = {"phone_mobile": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"})}

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
        help_text="MRN, phone, email, date of birth, or a first or last name.",
    )
