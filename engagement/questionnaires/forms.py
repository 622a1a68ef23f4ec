"""Forms of the questionnaire pages: the record's send form, the import form, the patient's answers."""

from __future__ import annotations

from typing import Any

from django import forms

from engagement.models import MessageChannel
from engagement.questionnaires import scoring
from engagement.questionnaires.models import Questionnaire


class SendForm(forms.Form):
    questionnaire = forms.ChoiceField(error_messages={"invalid_choice": "Choose one of this clinic's questionnaires."})
    channel = forms.ChoiceField(
        choices=[("", "The patient's preferred channel"), *MessageChannel.choices],
        required=False,
        label="Send by",
    )
    key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.active = {str(q.pk): q for q in Questionnaire.objects.filter(is_active=True).order_by("title")}
        field = self.fields["questionnaire"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Choose a questionnaire"), *((pk, q.title) for pk, q in self.active.items())]

    def clean_questionnaire(self) -> Questionnaire:
        return self.active[self.cleaned_data["questionnaire"]]


class ImportForm(forms.Form):
    file = forms.FileField(required=False, label="Questionnaire JSON file", help_text="A FHIR R4 Questionnaire.")
    text = forms.CharField(
        required=False, max_length=200_000, widget=forms.Textarea(attrs={"rows": 6}), label="Or paste the JSON"
    )
    key = forms.SlugField(required=False, max_length=64, label="Short name", help_text="Optional, e.g. phq-9.")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("file")
        if upload is not None:
            data["json"] = upload.read(200_001)
        elif data.get("text"):
            data["json"] = data["text"]
        else:
            raise forms.ValidationError("Choose a file or paste the questionnaire's JSON.")
        return data


class AnswersForm(forms.Form):
    """One radio group per question of the definition, named by its link id; every answer is
    optional here (saving progress); the service checks the options and, on submit, the required ones."""

    def __init__(self, *args: Any, questionnaire: Questionnaire, initial_answers: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.questions = scoring.questions(questionnaire.resource)
        for question in self.questions:
            refused = f"Question {question.number} ({question.text}): choose one of the answers offered."
            self.fields[question.link_id] = forms.ChoiceField(
                required=False,
                label=f"{question.number}. {question.text}",
                choices=[(o.code, o.display) for o in question.options],
                widget=forms.RadioSelect,
                initial=initial_answers.get(question.link_id),
                error_messages={"invalid_choice": refused},
            )

    def answers(self) -> dict[str, str]:
        return {q.link_id: self.cleaned_data.get(q.link_id) or "" for q in self.questions}
