"""Every free-text field has a maximum length, checked on the server with a clear error (#11 item 8:
a 10,000-character name widened the patient page and list for every user).

Encrypted columns hold ciphertext, so the limits are validators (model validation, which services
run with full_clean, and the form fields), not database varchar lengths."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest
from django import forms
from django.apps import apps
from django.core.validators import MaxLengthValidator
from django.db import models
from django.urls import reverse

from healthcrm.tenancy import organization_context
from patients.models import Patient, PatientNote
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

PROJECT_APPS = ("healthcrm", "patients", "engagement", "integrations", "compliance", "staff", "analytics")

# Written by code (an error summary, already cut to length where it is set), never typed into a form.
SYSTEM_WRITTEN = {("integrations.ImportJob", "error"), ("integrations.FhirConnection", "last_error")}


def test_every_free_text_model_field_has_a_maximum_length() -> None:
    unbounded = [
        f"{model._meta.label}.{field.name}"
        for model in apps.get_models()
        if model._meta.app_label in PROJECT_APPS
        for field in model._meta.concrete_fields
        if isinstance(field, models.CharField | models.TextField)
        and (model._meta.label, field.name) not in SYSTEM_WRITTEN
        and not any(isinstance(v, MaxLengthValidator) for v in field.validators)
    ]
    assert unbounded == []


def _form_classes() -> set[type[forms.BaseForm]]:
    for app in PROJECT_APPS:
        package = importlib.import_module(app)
        for info in pkgutil.walk_packages(package.__path__, app + "."):
            if "migrations" not in info.name and info.name.rsplit(".", 1)[-1] in ("forms", "gap_forms", "filters"):
                importlib.import_module(info.name)
    found: set[type[forms.BaseForm]] = set()
    pending: list[type[forms.BaseForm]] = [forms.BaseForm]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__module__.split(".")[0] in PROJECT_APPS:
                found.add(sub)
    return found


def test_every_free_text_form_field_has_a_maximum_length() -> None:
    unbounded = sorted(
        f"{form.__module__}.{form.__name__}.{name}"
        for form in _form_classes()
        for name, field in form.base_fields.items()
        if type(field) in (forms.CharField, forms.SlugField, forms.EmailField, forms.URLField)
        and field.max_length is None
    )
    assert unbounded == []


LONG_NAME = "A" * 10_000
NEW = {"mrn": "N-9", "family_name": "Stone", "date_of_birth": "1990-01-01", "sex": "female"}


def test_a_10000_character_given_name_is_refused_with_a_message(client_for, nurse_user, org_a) -> None:
    client = client_for(nurse_user)
    response = client.post(reverse("patients:create"), {**NEW, "given_name": LONG_NAME})
    assert response.status_code == 400
    assert "Ensure this value has at most 100 characters (it has 10000)." in response.content.decode()
    with organization_context(org_a):
        patient = PatientFactory(given_name="Cleo")
        assert list(Patient.objects.values_list("pk", flat=True)) == [patient.pk]
    edit = {**NEW, "given_name": LONG_NAME, "preferred_language": "en", "preferred_channel": "none"}
    response = client.post(reverse("patients:edit", args=[patient.pk]), edit)
    assert response.status_code == 400
    assert "Ensure this value has at most 100 characters (it has 10000)." in response.content.decode()
    with organization_context(org_a):
        assert Patient.objects.get(pk=patient.pk).given_name == "Cleo"


def test_a_service_refuses_encrypted_free_text_over_its_limit(org_a: Any, nurse_user: Any) -> None:
    """Encrypted text fields had no limit at all: services (imports, tasks, the API) now refuse too."""
    from django.core.exceptions import ValidationError

    from patients.care.services import note_add

    with organization_context(org_a):
        patient = PatientFactory()
        with pytest.raises(ValidationError) as refused:
            note_add(patient=patient, body="x" * 10_001, author=nurse_user)
        assert refused.value.message_dict == {
            "body": ["Ensure this value has at most 10000 characters (it has 10001)."]
        }
        assert PatientNote.objects.count() == 0
