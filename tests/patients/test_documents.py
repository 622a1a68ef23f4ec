"""Documents on the patient record (#11, "Patient record: documents"): a PDF, JPEG or PNG uploaded with
a title and a type, checked by its content and size, stored encrypted (never in clear, in the
database or on disk), listed on the Documents tab, downloaded as an attachment (access-logged),
soft-deleted by administrators; 404 across organizations, 403 for roles without clinical access."""

from __future__ import annotations

import io
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.db import connection
from django.test import Client
from django.urls import reverse

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from patients.documents.services import document_upload, safe_filename
from patients.models import PatientDocument
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\nSECRET-LAB-VALUE-4711\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"PIXELS-OF-AN-ID-CARD" * 10
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"scan" * 50
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"This program cannot be run in DOS mode" * 5


@pytest.fixture
def patient(org_a: Any) -> Any:
    with organization_context(org_a):
        return PatientFactory(given_name="Odile")


def _tab(patient: Any) -> str:
    return reverse("patients:documents", args=[patient.pk])


def _file(data: bytes, name: str, content_type: str = "application/pdf") -> Any:
    upload = io.BytesIO(data)
    upload.name = name
    return upload


def _upload(client: Any, patient: Any, data: bytes, name: str, **fields: str) -> Any:
    payload = {"title": "Cardiology referral", "kind": "referral", "file": _file(data, name), **fields}
    return client.post(_tab(patient), payload)


def _documents(org: Any) -> list[PatientDocument]:
    with organization_context(org):
        return list(PatientDocument.objects.order_by("id"))


def _raw(table: str, column: str, pk: int, key: str = "id") -> Any:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE {key} = %s", [pk])  # noqa: S608 (names are ours)
        return cursor.fetchone()[0]


# -- Upload -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "name", "content_type"),
    [(PDF, "referral.pdf", "application/pdf"), (PNG, "card.png", "image/png"), (JPEG, "scan.jpeg", "image/jpeg")],
)
def test_a_nurse_uploads_a_pdf_or_image(org_a, patient, nurse_user, client_for, data, name, content_type) -> None:
    client = client_for(nurse_user)
    response = _upload(client, patient, data, name)
    assert response.status_code == 302
    [document] = _documents(org_a)
    assert (document.patient_id, document.content_type, document.size) == (patient.pk, content_type, len(data))
    assert document.title == "Cardiology referral" and document.original_name == name
    assert document.uploaded_by_id == nurse_user.pk
    page = client.get(_tab(patient)).content.decode()
    assert "Cardiology referral" in page and reverse("patients:document_download", args=[document.pk]) in page


def test_the_stored_bytes_title_and_name_are_not_the_plaintext(org_a, patient, nurse_user, client_for) -> None:
    _upload(client_for(nurse_user), patient, PDF, "Odile-Smith-labs.pdf")
    [document] = _documents(org_a)
    with organization_context(org_a):
        stored = bytes(_raw("patients_patientdocumentcontent", "encrypted", document.pk, key="document_id"))
        title = _raw("patients_patientdocument", "title", document.pk)
        original = _raw("patients_patientdocument", "original_name", document.pk)
        entry = LogEntry.objects.get_for_object(document).get()
    assert b"SECRET-LAB-VALUE" not in stored and b"%PDF" not in stored and len(stored) > len(PDF)
    assert "Cardiology" not in title and "Odile" not in original
    assert "Cardiology" not in str(entry.changes) and "Odile" not in str(entry.changes)


def test_an_upload_never_touches_the_disk_in_clear(
    org_a, patient, nurse_user, client_for, settings, tmp_path, monkeypatch
) -> None:
    # Django's default handlers spool any upload over FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary
    # file (deleted after the request, but written in clear): count the temporary files made.
    from django.core.files import uploadedfile

    spooled: list[str] = []
    original = uploadedfile.TemporaryUploadedFile.__init__

    def spy(self: Any, *args: Any, **kwargs: Any) -> None:
        spooled.append(str(args[0] if args else kwargs.get("name")))
        original(self, *args, **kwargs)

    monkeypatch.setattr(uploadedfile.TemporaryUploadedFile, "__init__", spy)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    big = PDF + b"A" * 300_000
    assert _upload(client_for(nurse_user), patient, big, "big.pdf").status_code == 302
    assert spooled == [] and list(tmp_path.iterdir()) == []
    assert _documents(org_a)[0].size == len(big)


def test_a_renamed_program_is_refused_with_a_clear_form_error(org_a, patient, nurse_user, client_for) -> None:
    response = _upload(client_for(nurse_user), patient, EXE, "invoice.pdf")
    assert response.status_code == 400
    assert b"is not a PDF, JPEG or PNG (checked by its content, not its name)" in response.content
    assert _documents(org_a) == []


def test_a_file_over_the_limit_is_refused(org_a, patient, nurse_user, client_for, settings) -> None:
    settings.PATIENT_DOCUMENT_MAX_BYTES = 2048
    response = _upload(client_for(nurse_user), patient, PDF + b"0" * 4096, "huge.pdf")
    assert response.status_code == 400
    assert b"The file is larger than 2 KB." in response.content
    assert _documents(org_a) == []
    assert _upload(client_for(nurse_user), patient, PDF, "small.pdf").status_code == 302


def test_the_service_refuses_what_the_form_would(org_a, patient, settings) -> None:
    from django.core.exceptions import ValidationError

    settings.PATIENT_DOCUMENT_MAX_BYTES = 100
    with organization_context(org_a):
        for data in (EXE, b"", PDF + b"x" * 200):
            with pytest.raises(ValidationError):
                document_upload(patient=patient, title="t", kind="other", data=data)
        with pytest.raises(ValidationError):
            document_upload(patient=patient, title="x" * 201, kind="other", data=PDF)
        with pytest.raises(ValidationError):
            document_upload(patient=patient, title="t", kind="tattoo", data=PDF)
    assert _documents(org_a) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"title": "x" * 201},
        {"title": ""},
        {"kind": "tattoo"},
        {"title": "\x00", "kind": "\x00"},
    ],
)
def test_hostile_fields_re_render_the_form(org_a, patient, nurse_user, client_for, fields) -> None:
    response = _upload(client_for(nurse_user), patient, PDF, "a.pdf", **fields)
    assert response.status_code == 400 and b'class="error"' in response.content
    assert _documents(org_a) == []


def test_a_post_without_a_file_or_a_csrf_token_stores_nothing(org_a, patient, nurse_user) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(nurse_user)
    payload = {"title": "t", "kind": "other", "file": _file(PDF, "a.pdf")}
    assert client.post(_tab(patient), payload).status_code == 403
    token_page = client.get(_tab(patient))
    token = token_page.cookies["csrftoken"].value
    response = client.post(_tab(patient), {"title": "t", "kind": "other", "csrfmiddlewaretoken": token})
    assert response.status_code == 400 and b"This field is required." in response.content
    payload["file"] = _file(PDF, "a.pdf")
    assert client.post(_tab(patient), {**payload, "csrfmiddlewaretoken": token}).status_code == 302
    assert len(_documents(org_a)) == 1


# -- Download -----------------------------------------------------------------------------------


def _stored(org: Any, patient: Any, data: bytes = PDF, name: str = "Odile lab/../report 2026.pdf") -> PatientDocument:
    with organization_context(org):
        return document_upload(patient=patient, title="Lab report", kind="lab_report", data=data, original_name=name)


def test_download_returns_the_original_bytes_as_an_uncached_attachment_and_is_logged(
    org_a, patient, provider_user, client_for
) -> None:
    document = _stored(org_a, patient)
    response = client_for(provider_user).get(reverse("patients:document_download", args=[document.pk]))
    assert response.status_code == 200
    assert response.content == PDF
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="report_2026.pdf"'
    assert "no-store" in response["Cache-Control"]
    with organization_context(org_a):
        log = AccessLog.objects.filter(view_name="patients:document_download").get()
    assert log.action == AccessAction.VIEW
    assert log.records == [f"patients.patientdocument:{document.pk}", f"patients.patient:{patient.pk}"]


@pytest.mark.parametrize(
    ("name", "extension", "expected"),
    [
        ("../../etc/passwd", "pdf", "passwd.pdf"),
        ('C:\\Users\\x\\scan "1";.exe', "png", "scan_1.png"),
        ("Résumé of Zoë.jpeg", "jpg", "Resume_of_Zoe.jpg"),
        ("\x00\r\n", "pdf", "document.pdf"),
        ("a" * 300 + ".pdf", "pdf", "a" * 90 + ".pdf"),
    ],
)
def test_download_names_are_sanitised_with_the_extension_of_the_content(name, extension, expected) -> None:
    assert safe_filename(name, extension) == expected


def test_another_organizations_document_is_404_and_logged_as_denied(org_a, patient, other_org_user, client_for) -> None:
    document = _stored(org_a, patient)
    client = client_for(other_org_user)
    assert client.get(reverse("patients:document_download", args=[document.pk])).status_code == 404
    assert client.post(reverse("patients:document_delete", args=[document.pk])).status_code == 404
    assert client.get(_tab(patient)).status_code == 404
    assert _upload(client, patient, PDF, "a.pdf").status_code == 404
    assert len(_documents(org_a)) == 1


@pytest.mark.parametrize("role", ["analyst", "compliance", "frontdesk"])
def test_roles_without_clinical_access_get_403(org_a, patient, client_for, role, request) -> None:
    document = _stored(org_a, patient)
    client = client_for(request.getfixturevalue(f"{role}_user"))
    assert client.get(_tab(patient)).status_code == 403
    assert _upload(client, patient, PDF, "a.pdf").status_code == 403
    assert client.get(reverse("patients:document_download", args=[document.pk])).status_code == 403
    assert client.post(reverse("patients:document_delete", args=[document.pk])).status_code == 403
    assert len(_documents(org_a)) == 1
    with organization_context(org_a):
        denied = AccessLog.objects.filter(action=AccessAction.DENIED, view_name="patients:document_download").get()
    assert denied.records == [f"patients.patientdocument:{document.pk}"]


# -- Delete (administrators, soft, audited) -------------------------------------------------------


def test_an_administrator_sees_the_list_without_download_and_soft_deletes(
    org_a, patient, admin_user, nurse_user, client_for
) -> None:
    document = _stored(org_a, patient)
    client = client_for(admin_user)
    page = client.get(_tab(patient)).content.decode()
    assert "Lab report" in page and "Delete document" in page
    assert reverse("patients:document_download", args=[document.pk]) not in page
    assert b"Upload a document" not in client.get(_tab(patient)).content
    assert client.get(reverse("patients:document_download", args=[document.pk])).status_code == 403
    assert _upload(client, patient, PDF, "a.pdf").status_code == 403
    assert client.get(reverse("patients:document_delete", args=[document.pk])).status_code == 405
    response = client.post(reverse("patients:document_delete", args=[document.pk]))
    assert response.status_code == 302
    with organization_context(org_a):
        document.refresh_from_db()
        entries = LogEntry.objects.get_for_object(document).order_by("id")
        assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
        assert "deleted_at" in entries[1].changes_dict
        assert PatientDocument.objects.filter(pk=document.pk).exists()  # soft: the row stays
    assert document.deleted_at is not None and document.deleted_by_id == admin_user.pk
    assert "Lab report" not in client.get(_tab(patient)).content.decode()
    nurse = client_for(nurse_user)
    assert nurse.get(reverse("patients:document_download", args=[document.pk])).status_code == 404


def test_a_nurse_may_not_delete(org_a, patient, nurse_user, client_for) -> None:
    document = _stored(org_a, patient)
    client = client_for(nurse_user)
    assert b"Delete document" not in client.get(_tab(patient)).content
    assert client.post(reverse("patients:document_delete", args=[document.pk])).status_code == 403
    with organization_context(org_a):
        assert PatientDocument.objects.get(pk=document.pk).deleted_at is None
