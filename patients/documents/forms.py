from __future__ import annotations

from typing import Any

from django import forms

from patients.documents.services import NOT_ACCEPTED, max_bytes, size_label, sniff_type
from patients.models import DocumentKind


class DocumentUploadForm(forms.Form):
    """A PDF, JPEG or PNG for the patient's record, with a title and a kind."""

    title = forms.CharField(label="Title", max_length=200)
    kind = forms.ChoiceField(label="Type", choices=DocumentKind.choices)
    file = forms.FileField(
        label="File",
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,image/jpeg,image/png"}),
    )

    def __init__(self, *args: Any, too_large: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.too_large = too_large
        self.fields["file"].help_text = f"A PDF, JPEG or PNG of at most {size_label(max_bytes())}."

    def clean_file(self) -> Any:
        upload = self.cleaned_data.get("file")
        if upload is None:
            return upload
        if upload.size > max_bytes():
            raise forms.ValidationError(f"The file is larger than {size_label(max_bytes())}.")
        upload.seek(0)
        if sniff_type(upload.read(16)) is None:
            raise forms.ValidationError(NOT_ACCEPTED)
        upload.seek(0)
        return upload

    def full_clean(self) -> None:
        super().full_clean()
        if self.too_large and self.is_bound:
            # The upload handler dropped the file as it streamed: say why, not "this field is required".
            self.errors.pop("file", None)
            self.add_error("file", f"The file is larger than {size_label(max_bytes())}.")
