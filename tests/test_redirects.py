"""Open redirects: every `next` goes through `safe_next_url` (same host, safe scheme) or is ignored."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import RequestFactory
from django.urls import reverse

from healthcrm.security import safe_next_url
from healthcrm.tenancy import organization_context
from patients.care import services
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

HOSTILE = [
    "https://evil.example/",
    "//evil.example/",
    "///evil.example/",
    "http:\\\\evil.example",
    "javascript:alert(1)",
    "https://testserver.evil.example/",
    "abc",  # a bare word: redirect() would look it up as a view name and answer 500
    "patients:my_tasks",
    "evil.example/path",
]


@pytest.mark.parametrize("target", HOSTILE)
def test_safe_next_url_refuses_other_hosts_and_schemes(target: str) -> None:
    request = RequestFactory().post("/", {"next": target})
    assert safe_next_url(request, "/fallback/") == "/fallback/"


def test_safe_next_url_keeps_a_local_path_and_reads_get_too() -> None:
    factory = RequestFactory()
    assert safe_next_url(factory.post("/", {"next": "/patients/?page=2"}), "/x/") == "/patients/?page=2"
    assert safe_next_url(factory.get("/", {"next": "/patients/"}), "/x/") == "/patients/"
    assert safe_next_url(factory.post("/"), "/x/") == "/x/"


@pytest.fixture
def task(org_a, nurse_user):
    with organization_context(org_a):
        patient = PatientFactory()
        return services.task_assign(patient=patient, title="Call", due_date=date.today(), assignee_role="nurse")


@pytest.mark.parametrize("target", HOSTILE)
def test_task_status_ignores_an_offsite_next(client_for, nurse_user, task, target: str) -> None:
    response = client_for(nurse_user).post(
        reverse("patients:task_status", args=[task.pk]), {"status": "done", "next": target}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("patients:my_tasks")


def test_task_status_follows_a_local_next(client_for, nurse_user, task) -> None:
    back = reverse("patients:team_queue") + "?role=nurse"
    response = client_for(nurse_user).post(
        reverse("patients:task_status", args=[task.pk]), {"status": "done", "next": back}
    )
    assert response.status_code == 302
    assert response["Location"] == back
