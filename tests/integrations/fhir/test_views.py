"""Upload and job pages (admin only), the size limit, and the import_fhir command."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from healthcrm.tenancy import organization_context
from integrations.fhir import services
from integrations.fhir.synthetic import synthea_bundle
from integrations.models import ImportJob, JobStatus
from patients.models import Patient
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _upload(client, content: bytes, name: str = "bundle.json"):
    return client.post(
        reverse("integrations:fhir_import"),
        {"file": SimpleUploadedFile(name, content, content_type="application/json"), "source_system": "ehr"},
    )


@pytest.fixture
def eager(settings):
    settings.FHIR_IMPORT_EAGER = True


def test_admin_uploads_and_sees_the_report(org_a, admin_user, client_for, eager) -> None:
    client = client_for(admin_user)
    assert client.get(reverse("integrations:fhir_import")).status_code == 200
    response = _upload(client, json.dumps(synthea_bundle(2, encounters=3)).encode())
    assert response.status_code == 302
    with organization_context(org_a):
        job = ImportJob.objects.get()
        assert job.status == JobStatus.QUEUED and job.payload and b"Patient" not in bytes(job.payload)  # encrypted
    job = services.import_job_run(organization=org_a, job_id=job.pk, actor=admin_user)
    assert job.status == JobStatus.SUCCEEDED and job.payload in (b"", memoryview(b""))
    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="import-report"' in html and "Open patient #" in html and "hx-get" not in html
    with organization_context(org_a):
        patient = Patient.objects.get()
    assert reverse("patients:detail", args=[patient.pk]) in html
    assert patient.given_name not in html  # the report shows no PHI


def test_job_page_polls_while_running_and_returns_the_partial_to_htmx(org_a, admin_user, client_for, eager) -> None:
    client = client_for(admin_user)
    _upload(client, b'{"resourceType": "Bundle", "type": "collection", "entry": []}')
    with organization_context(org_a):
        job = ImportJob.objects.get()
    url = reverse("integrations:fhir_import_job", args=[job.pk])
    page = client.get(url).content.decode()
    assert 'hx-trigger="every 500ms"' in page and "<progress" in page
    partial = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<div id="job-status"')


def test_failures_are_listed_with_entry_and_element(org_a, admin_user, client_for, eager) -> None:
    data = synthea_bundle(2, encounters=2)
    data["entry"][0]["resource"]["gender"] = "F"
    _upload(client_for(admin_user), json.dumps(data).encode())
    with organization_context(org_a):
        job = ImportJob.objects.get()
    job = services.import_job_run(organization=org_a, job_id=job.pk)
    assert job.status == JobStatus.FAILED
    html = client_for(admin_user).get(reverse("integrations:fhir_import_job", args=[job.pk])).content.decode()
    assert "Patient.gender" in html and "rolled back" in html


def test_personas(org_a, org_b, admin_user, nurse_user, other_org_user, client_for, eager) -> None:
    _upload(client_for(admin_user), b"{}")
    with organization_context(org_a):
        job = ImportJob.objects.get()
    job_url = reverse("integrations:fhir_import_job", args=[job.pk])
    assert client_for(nurse_user).get(reverse("integrations:fhir_import")).status_code == 403  # a nurse
    assert client_for(nurse_user).get(job_url).status_code == 403
    other_admin = UserFactory(username="admin@lake.example")
    MembershipFactory(user=other_admin, organization=org_b, role="admin")
    assert client_for(other_admin).get(job_url).status_code == 404
    assert client_for(other_org_user).get(reverse("integrations:fhir_connections")).status_code == 403


def test_upload_size_is_limited(org_a, admin_user, client_for, settings, eager) -> None:
    settings.FHIR_IMPORT_MAX_UPLOAD_BYTES = 1000
    response = _upload(client_for(admin_user), b" " * 2000)
    assert response.status_code == 400 and "larger than" in response.content.decode()
    with organization_context(org_a):
        assert not ImportJob.objects.exists()


def test_garbage_uploads_never_answer_500(org_a, admin_user, client_for, eager) -> None:
    client = client_for(admin_user)
    for content in (b"\x00\xff" * 50, b"not json", b'{"resourceType": "Bundle"', b""):
        assert _upload(client, content).status_code in (302, 400)
    with organization_context(org_a):
        for job in ImportJob.objects.all():
            done = services.import_job_run(organization=org_a, job_id=job.pk)
            assert done.status == JobStatus.FAILED
            page = client.get(reverse("integrations:fhir_import_job", args=[job.pk]))
            assert page.status_code == 200


def test_import_command(org_a, tmp_path, capsys) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(synthea_bundle(4, encounters=2)))
    call_command("import_fhir", str(good), "--organization", "north")
    out = capsys.readouterr().out
    assert "Observation" in out and "without failures" in out
    bad = tmp_path / "bad.json"
    bad.write_text('{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": 1}}]}')
    with pytest.raises(CommandError, match="failure"):
        call_command("import_fhir", str(good), str(bad), "--organization", "north")
    assert "entry 0" in capsys.readouterr().out
    with pytest.raises(CommandError, match="organization"):
        call_command("import_fhir", str(good), "--organization", "nowhere")
