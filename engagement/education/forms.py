"""Forms of the education pages: the record's send form and the preview's language choice."""

from __future__ import annotations

from typing import Any

from django import forms

from engagement.education.models import EducationFormat, EducationItem


class ItemChoiceField(forms.ModelChoiceField):
    """Items by their English title (else their first version's, else their key), videos marked."""

    def label_from_instance(self, obj: Any) -> str:
        versions = {v.language: v.title for v in obj.versions.all()}
        title = versions.get("en") or next(iter(versions.values()), obj.key)
        return f"{title} (video)" if obj.format == EducationFormat.VIDEO else title


class EducationSendForm(forms.Form):
    """Send one library item to the patient. `key` is a one-time token put in the form when it is
    shown: submitting the same form twice sends one message."""

    item = ItemChoiceField(
        queryset=EducationItem.objects.all_organizations().none(),
        label="Education to send",
        help_text="Sent in the patient's language when the item has it, else in English.",
    )
    key = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The current organization's active items (tenant manager and RLS).
        items = EducationItem.objects.filter(is_active=True).prefetch_related("versions").order_by("key")
        self.fields["item"].queryset = items  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data: dict[str, Any] = super().clean() or self.cleaned_data
        if self.errors.pop("key", None):
            self.add_error(None, "This form has expired: open the Engagement tab again.")
        return data


class PreviewForm(forms.Form):
    """`?language=`: which version to preview (a value the item has not falls back, never a 500)."""

    language = forms.CharField(required=False, max_length=35)

    def language_or(self, default: str) -> str:
        if self.is_valid():
            return str(self.cleaned_data.get("language") or default)
        return default
