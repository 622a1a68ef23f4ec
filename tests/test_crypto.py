"""Encrypted PHI: ciphertext at rest, blind-index search, loud failures, key rotation."""

from __future__ import annotations

import io
from datetime import date

import factory
import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from healthcrm import crypto
from healthcrm.crypto import DecryptionError, blind_index, is_encrypted, normalize_name, normalize_phone
from healthcrm.tenancy import organization_context
from patients.models import Patient
from patients.selectors import patient_list
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def keys(settings):
    """Swap FIELD_ENCRYPTION_KEY for a test and rebuild the crypter; restore afterwards."""
    original = list(settings.FIELD_ENCRYPTION_KEY)

    def use(*new_keys: str) -> None:
        settings.FIELD_ENCRYPTION_KEY = list(new_keys)
        crypto.reload_keys()

    yield use
    settings.FIELD_ENCRYPTION_KEY = original
    crypto.reload_keys()


def _encrypted_field_count() -> int:
    return sum(1 for field in Patient._meta.concrete_fields if is_encrypted(field))


def test_raw_sql_sees_only_ciphertext_in_encrypted_columns(org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory(
            given_name="Zebulon",
            family_name="Quartermaine",
            mrn="Q-777",
            phone_mobile="+13125550142",
            email="zq@example.org",
            date_of_birth=date(1961, 7, 4),
        )
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM patients_patient WHERE id = %s", [patient.pk])
            row = " ".join(str(value) for value in cursor.fetchone())
    # The whole birth date, not its year: four digits turn up by chance in timestamps and ids.
    for clear in ("Zebulon", "Quartermaine", "Q-777", "5550142", "zq@example.org", "1961-07-04"):
        assert clear not in row
    assert row.count("gAAAA") >= 6  # Fernet tokens


def test_blind_indexes_find_patients_without_decrypting(org_a) -> None:
    with organization_context(org_a):
        target = PatientFactory(
            given_name="José",
            family_name="Núñez",
            mrn="ab-123",
            phone_mobile="+13125550199",
            email="Jose.Nunez@Example.org",
            date_of_birth=date(1970, 2, 3),
        )
        # Every value searched below is chosen so that no draw of the others can match it: fixed names
        # (a random "Joseph" matched the "jose" prefix), birth dates drawn after 1970, and the
        # factory's MRNs (MRN-n), phones (773) and emails (ada.lovelace@) never collide with these.
        PatientFactory.create_batch(
            3,
            given_name="Ada",
            family_name="Lovelace",
            date_of_birth=factory.Faker("date_between", start_date=date(1980, 1, 1), end_date=date(2005, 12, 31)),
        )
        for query in (
            "AB-123",
            "ab 123",
            "(312) 555-0199",
            "312.555.0199",
            "+1 312 555 0199",
            "jose.nunez@example.org",
            "1970-02-03",
            "02/03/1970",
            "jose",
            "NUNEZ",
            "Núñez",
        ):
            assert list(patient_list(query=query)) == [target], query
        assert Patient.objects.blind_match(phone_mobile="312-555-0199").get() == target
        assert list(patient_list(query="Jos")) == [target]  # 3+ letters: name prefix (tests/patients)
        assert list(patient_list(query="Jo")) == []


def test_blind_indexes_differ_between_organizations(org_a, org_b) -> None:
    assert blind_index("+13125550100", "phone", org_a.pk) != blind_index("+13125550100", "phone", org_b.pk)
    assert blind_index("Ada", "name", org_a.pk) == blind_index(" ada ", "name", org_a.pk)


def test_normalizers() -> None:
    assert normalize_name("  José   NÚÑEZ ") == "jose nunez"
    assert normalize_phone("(312) 555-0100") == "+13125550100"
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        normalize_phone("12")


def test_a_value_no_key_decrypts_raises_a_clear_error_not_ciphertext(org_a, keys) -> None:
    with organization_context(org_a):
        patient = PatientFactory(given_name="Hidden")
        keys(Fernet.generate_key().decode())
        with pytest.raises(DecryptionError) as excinfo:
            Patient.objects.get(pk=patient.pk)
    message = str(excinfo.value)
    assert "patients.Patient." in message and "FIELD_ENCRYPTION_KEY" in message
    assert "Hidden" not in message and "gAAAA" not in message


def test_rotation_re_encrypts_under_the_new_key_and_old_key_can_then_go(org_a, org_b, settings, keys) -> None:
    old = settings.FIELD_ENCRYPTION_KEY[0]
    new = Fernet.generate_key().decode()
    for org in (org_a, org_b):
        with organization_context(org):
            PatientFactory.create_batch(3, email="")
    keys(new, old)
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    # 6 patients x every encrypted field (empty strings are encrypted too: emptiness is not shown)
    total = 6 * _encrypted_field_count()
    assert f"Re-encrypted {total} values; 0 were already current." in out.getvalue()
    keys(new)
    out = io.StringIO()
    call_command("check_encryption", stdout=out)
    assert "Every encrypted value decrypts." in out.getvalue()
    with organization_context(org_a):
        assert all(p.given_name for p in Patient.objects.all())
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert f"Re-encrypted 0 values; {total} were already current." in out.getvalue()


def test_check_encryption_reports_values_no_key_decrypts(org_a, keys) -> None:
    with organization_context(org_a):
        patient = PatientFactory(email="")
    keys(Fernet.generate_key().decode())
    out = io.StringIO()
    with pytest.raises(CommandError, match=f"{_encrypted_field_count()} encrypted values cannot be decrypted"):
        call_command("check_encryption", stdout=out)
    assert f"undecryptable in rows (first ids): {patient.pk}" in out.getvalue()


def test_rotation_covers_the_totp_keys_of_the_second_factor(nurse_user, settings, keys) -> None:
    from django_otp.oath import totp

    from staff.models import AuthenticatorDevice
    from tests.mfa import authenticator_for

    device = authenticator_for(nurse_user)
    old = list(settings.FIELD_ENCRYPTION_KEY)
    new = Fernet.generate_key().decode()
    keys(new, *old)
    out = io.StringIO()
    call_command("rotate_encryption_key", stdout=out)
    assert "staff.AuthenticatorDevice.key: 1 re-encrypted" in out.getvalue()
    keys(new)
    assert AuthenticatorDevice.objects.get(pk=device.pk).verify_token(f"{totp(device.bin_key):06d}")
