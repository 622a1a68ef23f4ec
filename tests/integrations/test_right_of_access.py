"""Issue 13, item 4, right of access: a request (due in 30 days) on a compliance screen (overdue
first); a Celery job with a progress bar builds a FHIR R4 Bundle (validated with fhir.resources
R4B, every section's resources in it) and a readable document (every section), stored encrypted,
downloadable once by compliance or an administrator, expiring, access-logged as an export;
another organization's request is 404, roles without the permission 403."""

from __future__ import annotations

import io
import json
import zipfile
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.urls import reverse
from fhir.resources.R4B.bundle import Bundle

from compliance.models import AccessAction, AccessLog
from engagement.models import OutboundMessage
from engagement.services import consent_set
from healthcrm.celery import app
from healthcrm.tenancy import organization_context
from integrations.models import RightOfAccessPackage, RightOfAccessRequest, RightOfAccessStatus
from integrations.right_of_access import record, services
from integrations.right_of_access.tasks import right_of_access_build_task
from patients.care.services import care_plan_start, goal_add
from patients.services import allergy_add, condition_add, medication_add, observation_record
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 21, 0, tzinfo=UTC)


@pytest.fixture
def alma(org_a, client_for, nurse_user) -> Any:
    """A patient with something in every section: problems, medications, allergies, results,
    visits, a care plan with a goal, a message sent, a consent, and a view in the access log."""
    with time_machine.travel(NOW - timedelta(days=3), tick=False), organization_context(org_a):
        patient = PatientFactory(given_name="Alma", family_name="Northcott", mrn="N-4471")
        condition_add(patient=patient, code="38341003", display="Hypertension", onset_date=date(2020, 1, 2))
        medication_add(patient=patient, name="Lisinopril 10 mg tablet", dose_text="10 mg", schedule_text="daily")
        allergy_add(patient=patient, substance_display="Penicillin", reaction="Hives")
        observation_record(
            patient=patient, code="4548-4", value_quantity=Decimal("6.1"), effective_at=NOW - timedelta(days=5)
        )
        AppointmentFactory(patient=patient, practitioner=PractitionerFactory(), reason="Blood pressure check")
        plan = care_plan_start(patient=patient, title="Hypertension plan")
        goal_add(
            care_plan=plan,
            description="Systolic under 140",
            observation_code="8480-6",
            targets=[{"component": "", "comparator": "<", "value": "140"}],
        )
        OutboundMessage.objects.create(
            patient=patient,
            subject_type="staff_message",
            slot="staff:1",
            channel="sms",
            status="sent",
            due_at=NOW - timedelta(days=3),
            next_attempt_at=NOW - timedelta(days=3),
            sent_at=NOW - timedelta(days=3),
            body="Please bring your blood pressure diary.",
        )
        consent_set(patient=patient, channel="email", status="opted_out", source="staff")
        PatientFactory(given_name="Bram", family_name="Quillfeather")  # never in Alma's package
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        assert client_for(nurse_user).get(reverse("patients:detail", args=[patient.pk])).status_code == 200
    return patient


def _received(org: Any, patient: Any, at: datetime = NOW) -> RightOfAccessRequest:
    with time_machine.travel(at, tick=False), organization_context(org):
        return services.right_of_access_receive(patient=patient, actor=None, now=at)


def _build(org: Any, request: RightOfAccessRequest) -> None:
    with organization_context(org):
        services.right_of_access_start(request=request)
    right_of_access_build_task.apply(args=(org.pk, request.pk)).get()


def _download(client: Any, request: RightOfAccessRequest) -> Any:
    return client.post(reverse("integrations:right_of_access_download", args=[request.pk]))


def _files(response: Any) -> tuple[dict[str, Any], str]:
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = sorted(archive.namelist())
    assert [n.rsplit("/", 1)[1] for n in names] == ["record.html", "record.json"]
    return json.loads(archive.read(names[1])), archive.read(names[0]).decode()


# -- The request and the screen ------------------------------------------------------------------


def test_a_request_is_due_in_30_days_and_the_screen_lists_overdue_first(
    org_a, client_for, compliance_user, alma
) -> None:
    with time_machine.travel(NOW, tick=False):
        response = client_for(compliance_user).post(reverse("integrations:right_of_access_create", args=[alma.pk]))
    assert response.status_code == 302
    with organization_context(org_a):
        fresh = RightOfAccessRequest.objects.get()
    assert (fresh.requested_at, fresh.due_at, fresh.status) == (NOW, NOW + timedelta(days=30), "received")
    assert fresh.received_by == compliance_user
    old = _received(org_a, alma, NOW - timedelta(days=40))  # overdue
    with organization_context(org_a):
        other = PatientFactory()
    middle = _received(org_a, other, NOW - timedelta(days=10))
    with time_machine.travel(NOW, tick=False):
        page = client_for(compliance_user).get(reverse("integrations:right_of_access_list"))
    html = page.content.decode()
    order = [int(chunk.split('"', 1)[0]) for chunk in html.split('data-request="')[1:]]
    assert order == [old.pk, middle.pk, fresh.pk]
    assert html.count('data-overdue="true"') == 1 and "Overdue" in html


# -- The job, the bundle and the document -------------------------------------------------------


def test_the_job_builds_a_valid_bundle_and_a_document_with_every_section(
    org_a, client_for, compliance_user, alma
) -> None:
    request = _received(org_a, alma)
    with time_machine.travel(NOW, tick=False):
        _build(org_a, request)
    with organization_context(org_a):
        request.refresh_from_db()
        package = RightOfAccessPackage.objects.get(request=request)
    assert (request.status, request.progress, request.expires_at) == ("ready", 100, NOW + timedelta(days=7))
    assert b"Alma" not in bytes(package.bundle) and b"Northcott" not in bytes(package.document)  # encrypted
    with time_machine.travel(NOW + timedelta(hours=1), tick=False):
        response = _download(client_for(compliance_user), request)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    bundle, document = _files(response)

    Bundle.model_validate(bundle)  # fhir.resources R4B: raises if not valid
    kinds = Counter(entry["resource"]["resourceType"] for entry in bundle["entry"])
    for kind in (
        "Patient",
        "Condition",
        "MedicationStatement",
        "AllergyIntolerance",
        "Observation",
        "Appointment",
        "Practitioner",
        "CarePlan",
        "Goal",
        "Communication",
        "Consent",
        "AuditEvent",
    ):
        assert kinds[kind] >= 1, kind
    assert kinds["Patient"] == 1 and request.resource_count == len(bundle["entry"])
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["name"][0]["family"] == "Northcott"
    assert "Quillfeather" not in json.dumps(bundle) and "Quillfeather" not in document
    audit = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "AuditEvent"]
    nurse_reads = [a for a in audit if a["agent"][0].get("role") == [{"text": "Nurse"}] and a["action"] == "R"]
    assert len(nurse_reads) == 1 and nurse_reads[0]["recorded"] == (NOW - timedelta(days=2)).isoformat()

    for key, title in record.SECTIONS:
        assert f'data-section="{key}"' in document and title in document, key
    for text in (
        "N-4471",
        "Hypertension",
        "Lisinopril 10 mg tablet",
        "Penicillin",
        "6.1 %",
        "Blood pressure check",
        "Systolic under 140",
        "Please bring your blood pressure diary.",
        "Opted out",
        "nurse@north.example",
    ):
        assert text in document, text


def test_the_progress_bar_polls_while_the_job_runs_and_stops_when_ready(
    org_a, client_for, admin_user, alma, django_capture_on_commit_callbacks
) -> None:
    request = _received(org_a, alma)
    url = reverse("integrations:right_of_access", args=[request.pk])
    with time_machine.travel(NOW, tick=False):
        client = client_for(admin_user)
        with django_capture_on_commit_callbacks(execute=False) as queued:
            assert client.post(reverse("integrations:right_of_access_start", args=[request.pk])).status_code == 302
        assert len(queued) == 1  # the job is queued when the start commits
        running = client.get(url, headers={"HX-Request": "true"}).content.decode()
        assert 'hx-trigger="every 1s"' in running and 'data-status="in_progress"' in running
        assert "<html" not in running  # the partial only
        app.conf.task_always_eager = True  # the job runs here, as the worker would run it
        try:
            queued[0]()
        finally:
            app.conf.task_always_eager = False
        ready = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "hx-trigger" not in ready and 'data-status="ready"' in ready and 'value="100"' in ready
    assert "Download (once)" in ready


# -- Download once, expiry, access ---------------------------------------------------------------


def test_the_package_downloads_once_and_is_logged_as_an_export(org_a, client_for, compliance_user, alma) -> None:
    request = _received(org_a, alma)
    with time_machine.travel(NOW, tick=False):
        _build(org_a, request)
        client = client_for(compliance_user)
        assert _download(client, request).status_code == 200
        again = _download(client, request)
    assert again.status_code == 302
    with organization_context(org_a):
        request.refresh_from_db()
        assert not RightOfAccessPackage.objects.exists()  # deleted with the download
        exports = list(AccessLog.objects.filter(view_name="integrations:right_of_access_download").order_by("id"))
    assert (request.status, request.fulfilled_by, request.fulfilled_at) == ("delivered", compliance_user, NOW)
    assert [e.action for e in exports] == [AccessAction.EXPORT, AccessAction.CHANGE]
    assert f"patients.patient:{alma.pk}" in exports[0].records
    assert f"integrations.rightofaccessrequest:{request.pk}" in exports[0].records


def test_an_undownloaded_package_expires_and_is_deleted(org_a, client_for, admin_user, alma) -> None:
    request = _received(org_a, alma)
    with time_machine.travel(NOW, tick=False):
        _build(org_a, request)
    with time_machine.travel(NOW + timedelta(days=7), tick=False):
        response = _download(client_for(admin_user), request)
        assert response.status_code == 302
        page = client_for(admin_user).get(response["Location"]).content.decode()
    assert "expired" in page
    with organization_context(org_a):
        request.refresh_from_db()
        assert request.status == RightOfAccessStatus.EXPIRED and not RightOfAccessPackage.objects.exists()
        assert not AccessLog.objects.filter(action=AccessAction.EXPORT).exists()
    with time_machine.travel(NOW + timedelta(days=8), tick=False):  # it can be built again
        _build(org_a, request)
    with organization_context(org_a):
        request.refresh_from_db()
    assert request.status == RightOfAccessStatus.READY


@pytest.mark.parametrize("name", ["right_of_access", "right_of_access_start", "right_of_access_download"])
def test_another_organization_gets_404_and_roles_without_permission_403(
    name, org_a, client_for, other_org_user, nurse_user, analyst_user, alma
) -> None:
    request = _received(org_a, alma)
    url = reverse(f"integrations:{name}", args=[request.pk])
    method = "get" if name == "right_of_access" else "post"
    assert getattr(client_for(other_org_user), method)(url).status_code == 404
    assert getattr(client_for(nurse_user), method)(url).status_code == 403
    assert getattr(client_for(analyst_user), method)(url).status_code == 403
    create = reverse("integrations:right_of_access_create", args=[alma.pk])
    assert client_for(other_org_user).post(create).status_code == 404
    assert client_for(nurse_user).post(create).status_code == 403
    assert client_for(nurse_user).get(reverse("integrations:right_of_access_list")).status_code == 403
    with organization_context(org_a):
        request.refresh_from_db()
        assert RightOfAccessRequest.objects.count() == 1 and request.status == "received"


def test_the_job_skips_a_request_not_started_or_gone(org_a, alma) -> None:
    request = _received(org_a, alma)
    right_of_access_build_task.apply(args=(org_a.pk, request.pk)).get()  # not started: nothing done
    right_of_access_build_task.apply(args=(org_a.pk, request.pk + 999)).get()
    with organization_context(org_a):
        request.refresh_from_db()
        assert request.status == "received" and not RightOfAccessPackage.objects.exists()


def test_a_job_whose_worker_died_can_be_started_again_later_not_while_it_runs(org_a, alma) -> None:
    request = _received(org_a, alma)
    with time_machine.travel(NOW, tick=False), organization_context(org_a):
        services.right_of_access_start(request=request)  # queued; the worker dies before it runs
        request.refresh_from_db()
        with pytest.raises(ValidationError):
            services.right_of_access_start(request=request)
    with time_machine.travel(NOW + timedelta(minutes=16), tick=False):
        with organization_context(org_a):
            request.refresh_from_db()
            services.right_of_access_start(request=request)
        right_of_access_build_task.apply(args=(org_a.pk, request.pk)).get()
    with organization_context(org_a):
        request.refresh_from_db()
    assert request.status == RightOfAccessStatus.READY
