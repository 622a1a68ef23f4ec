"""Audit of writes (django-auditlog, redacted) and of reads (the access log)."""

from __future__ import annotations

import json

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver

from compliance.access import PHIAdminMixin, search_fingerprint
from compliance.models import AccessLog
from healthcrm.crypto import REDACTED, phi_models, protected_field_names
from healthcrm.tenancy import organization_context
from patients.services import patient_create, patient_update
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_every_phi_model_is_registered_with_auditlog_and_redacts_every_protected_field() -> None:
    models = list(phi_models())
    assert models
    for model in models:
        assert auditlog.contains(model), model
        config = auditlog.get_model_fields(model)
        assert set(protected_field_names(model)) <= set(config["mask_fields"])
        assert config["mask_callable"] == "healthcrm.crypto.redact"


def test_audit_entries_hold_no_plaintext_phi(org_a, nurse_user) -> None:
    with organization_context(org_a), set_actor(nurse_user):
        patient = patient_create(
            mrn="SECRET-1",
            given_name="Philomena",
            family_name="Crabtree",
            date_of_birth="1950-05-06",
            phone_mobile="312 555 0123",
            email="pc@example.org",
        )
        patient_update(patient=patient, given_name="Philippa", is_active=False)
        entries = list(LogEntry.objects.get_for_object(patient).order_by("timestamp"))
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    dump = json.dumps([[e.changes, e.object_repr, e.additional_data, e.serialized_data] for e in entries])
    for clear in ("SECRET", "Philomena", "Philippa", "Crabtree", "1950", "0123", "pc@example.org"):
        assert clear not in dump
    update = entries[1]
    assert update.changes_dict["given_name"] == [REDACTED, REDACTED]
    assert update.changes_dict["is_active"] == ["True", "False"]  # non-PHI stays readable
    assert update.actor == nurse_user
    assert update.object_repr == f"Patient #{patient.pk}"
    assert update.additional_data == {"organization_id": org_a.pk}


def test_a_change_of_only_an_encrypted_field_is_still_logged(org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        patient_update(patient=patient, family_name="Otherwise")
        update = LogEntry.objects.get_for_object(patient).filter(action=LogEntry.Action.UPDATE).get()
    assert update.changes_dict["family_name"] == [REDACTED, REDACTED]


def _all_views(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            if pattern.app_name == "admin":
                continue  # admin pages are checked per ModelAdmin below
            yield from _all_views(pattern, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def test_every_view_is_either_access_logged_or_declared_phi_free() -> None:
    unmarked = [
        route
        for route, view in _all_views()
        if not (hasattr(view, "phi_access_action") or getattr(view, "phi_free", False))
    ]
    assert unmarked == [], f"views neither @phi_view nor @phi_free: {unmarked}"


def test_every_admin_page_of_a_phi_model_is_access_logged() -> None:
    for model in phi_models():
        model_admin = admin.site._registry.get(model)
        assert model_admin is not None and isinstance(model_admin, PHIAdminMixin), model


def test_search_fingerprint_is_keyed_and_stable(settings) -> None:
    import hashlib
    import re

    fingerprint = search_fingerprint({"q": "ada"})
    # Stable: the same search (spacing and case folded) gives the same fingerprint, another one not.
    assert search_fingerprint({"q": "Ada  Lovelace"}) == search_fingerprint({"q": "ada lovelace"})
    assert search_fingerprint({"q": "ada"}) == fingerprint
    assert len({fingerprint, search_fingerprint({"q": "adb"}), search_fingerprint({"name": "ada"})}) == 3
    # Keyed: not a plain hash anyone could recompute from a guess, and another key gives another one.
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint)
    for guess in ("ada", "q\x1fada", "search\x1dq\x1fada"):
        assert fingerprint != hashlib.sha256(guess.encode()).hexdigest()
    settings.BLIND_INDEX_KEY = "another-blind-index-key-for-this-test"
    assert search_fingerprint({"q": "ada"}) != fingerprint
    assert AccessLog._meta.get_field("search_fingerprint").max_length == 64
