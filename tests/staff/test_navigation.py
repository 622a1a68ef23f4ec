"""The main navigation marks the one entry the page belongs to (issue #11 item 13: on the calendar
both "Patients" and "Appointments" were marked current)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from healthcrm.tenancy import organization_context
from tests.factories import AppointmentFactory, PatientFactory

pytestmark = pytest.mark.django_db

_NAV = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.S)
_CURRENT = re.compile(r'<a [^>]*aria-current="page"[^>]*>([^<]+)</a>')


def _current_entries(response: Any) -> list[str]:
    assert response.status_code == 200, response.status_code
    nav = _NAV.search(response.content.decode())
    assert nav, "no main navigation"
    return _CURRENT.findall(nav.group(1))


def test_each_page_marks_exactly_its_own_entry(org_a: Any, coordinator_user: Any, client_for: Any) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        appointment = AppointmentFactory(patient=patient)
    client = client_for(coordinator_user)
    expected = {
        reverse("dashboard"): "Dashboard",
        reverse("patients:list"): "Patients",
        reverse("patients:detail", args=[patient.pk]): "Patients",
        reverse("patients:care_plan", args=[patient.pk]): "Patients",
        reverse("patients:appointments", args=[patient.pk]): "Patients",  # the patient's own tab
        reverse("patients:appointment_calendar"): "Appointments",
        reverse("patients:appointment_detail", args=[appointment.pk]): "Appointments",
        reverse("patients:my_tasks"): "My tasks",
        reverse("patients:team_queue"): "My tasks",
        reverse("patients:follow_up"): "My tasks",
        reverse("engagement:outbox"): "Outreach",
        reverse("engagement:rules"): "Outreach",
        reverse("analytics:index"): "Analytics",
    }
    found = {path: _current_entries(client.get(path, follow=True)) for path in expected}
    assert found == {path: [name] for path, name in expected.items()}


def test_access_log_marks_its_entry_and_notifications_none(org_a: Any, admin_user: Any, client_for: Any) -> None:
    client = client_for(admin_user)
    assert _current_entries(client.get(reverse("compliance:access_log"))) == ["Access log"]
    assert _current_entries(client.get(reverse("integrations:fhir_import"))) == ["EHR data"]
    # The bell's page is no navigation entry: nothing is marked (it was "Patients").
    assert _current_entries(client.get(reverse("patients:notifications"))) == []


def test_the_staff_pages_mark_their_entry(org_a: Any, admin_user: Any, nurse_user: Any, client_for: Any) -> None:
    from healthcrm.models import Membership

    with organization_context(org_a):
        member = Membership.objects.get(user=nurse_user)
    client = client_for(admin_user)
    for path in (reverse("members:list"), reverse("members:invite"), reverse("members:detail", args=[member.pk])):
        assert _current_entries(client.get(path)) == ["Staff"]
