from __future__ import annotations

from django import forms

from integrations.fhir.services import max_upload_bytes


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        label="FHIR file",
        help_text="A FHIR R4 Bundle (transaction, batch, collection or searchset) or NDJSON, in JSON.",
    )
    source_system = forms.CharField(
        max_length=255,
        required=False,
        initial="upload",
        help_text="Where the data comes from (e.g. the EHR's name). Importing again from the same source updates.",
    )

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        limit = max_upload_bytes()
        if upload.size > limit:
            raise forms.ValidationError(f"The file is larger than {limit // (1024 * 1024)} MB.")
        return upload
