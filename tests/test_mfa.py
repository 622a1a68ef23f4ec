"""The second factor an attacker with a password cannot pass: mandatory for staff and superusers
everywhere (Django admin included), enrolment only through a one-time link, recovery codes once
each, every change audited and told to the user; and secrets the app's database role cannot read."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.apps import apps
from django.conf import settings
from django.core import mail
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import TestCase
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken

from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from staff.models import AuthenticatorDevice, MFAEnrolment, RecoveryCodes
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.mfa import authenticator_for, enrolment_path, verify_session

pytestmark = pytest.mark.django_db

MFA_VERIFY = "/accounts/mfa/"
MFA_SETUP = "/accounts/mfa/setup/"
SEND_LINK = "/accounts/mfa/enrolment/send/"


@pytest.fixture(autouse=True)
def no_throttle(settings: Any) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.OTP_STATIC_THROTTLE_FACTOR = 0


@pytest.fixture
def platform_admin(db: None) -> Any:
    # No membership: no organization on any request.
    return UserFactory(username="platform@example.test", is_staff=True, is_superuser=True)


@pytest.fixture
def clinic_admin(org_a: Any) -> Any:
    user = UserFactory(username="admin@north.example", is_staff=True)
    MembershipFactory(user=user, organization=org_a, role="admin")
    return user


@pytest.fixture
def mfa_user(db: None) -> Any:
    organization = OrganizationFactory(slug="secure", name="Secure Clinic", require_mfa=True)
    user = UserFactory(username="nurse@secure.example")
    MembershipFactory(user=user, organization=organization, role="nurse")
    return user


def _events(user: Any) -> list[str]:
    """The user's second-factor audit events: in each organization's trail (written while it was
    current) and the platform's."""
    entries = list(LogEntry.objects.filter(object_pk=str(user.pk), content_type__model="user"))
    for organization in Organization.objects.all():
        with organization_context(organization):
            entries += LogEntry.objects.filter(object_pk=str(user.pk), content_type__model="user")
    # Other entries on the user (changes of its fields, audited as security events) carry no event.
    return [
        e.additional_data["event"]
        for e in sorted(entries, key=lambda e: e.pk)
        if e.additional_data and "event" in e.additional_data
    ]


def _enrol(client: Any, user: Any) -> tuple[AuthenticatorDevice, list[str]]:
    """Open a fresh link, confirm the authenticator; the new device and the recovery codes shown."""
    assert client.get(enrolment_path(user))["Location"] == MFA_SETUP
    assert client.get(MFA_SETUP).status_code == 200
    device = AuthenticatorDevice.objects.get(user=user, confirmed=False)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(MFA_SETUP, {"token": f"{totp(device.bin_key):06d}", "next": "/"})
    assert response.status_code == 200
    return device, re.findall(r"<code>([0-9a-f]{5}-[0-9a-f]{5})</code>", response.content.decode())


# -- 1. Staff and superusers: always --------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/auth/user/", "/admin/otp_static/staticdevice/", "/"])
def test_a_superuser_without_organization_needs_the_second_factor_everywhere(
    client: Any, platform_admin: Any, path: str
) -> None:
    client.force_login(platform_admin)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"{MFA_VERIFY}?next={path}"


def test_a_clinic_admin_in_an_organization_without_mfa_needs_it_too(client: Any, clinic_admin: Any, org_a: Any) -> None:
    assert org_a.require_mfa is False
    client.force_login(clinic_admin)
    assert client.get("/admin/")["Location"] == f"{MFA_VERIFY}?next=/admin/"
    assert client.get("/")["Location"] == f"{MFA_VERIFY}?next=/"


def test_after_the_second_factor_the_admin_opens(client: Any, platform_admin: Any) -> None:
    client.force_login(platform_admin)
    device = authenticator_for(platform_admin)
    response = client.post(MFA_VERIFY, {"token": f"{totp(device.bin_key):06d}", "next": "/admin/"})
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_staff_sign_in_through_the_login_page_lands_on_the_second_factor(client: Any, platform_admin: Any) -> None:
    authenticator_for(platform_admin)
    client.post("/accounts/login/", {"username": platform_admin.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    assert client.get("/admin/")["Location"] == f"{MFA_VERIFY}?next=/admin/"


@pytest.mark.parametrize("persona", ["mfa_user", "platform_admin"])
def test_the_password_change_waits_for_the_second_factor(
    client: Any, persona: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(persona)
    client.force_login(user)
    response = client.get("/accounts/password_change/")
    assert response["Location"] == f"{MFA_VERIFY}?next=/accounts/password_change/"
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": PASSWORD,
            "new_password1": "a-new-long-passphrase-1",
            "new_password2": "a-new-long-passphrase-1",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    verify_session(client, user)
    assert client.get("/accounts/password_change/").status_code == 200


# -- 2. Enrolment through a one-time link ----------------------------------------------------------


def test_setup_without_a_link_shows_no_secret(client: Any, mfa_user: Any) -> None:
    client.force_login(mfa_user)
    response = client.get(f"{MFA_SETUP}?next=/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "check your email for the enrolment link" in html
    assert f'action="{SEND_LINK}"' in html
    assert "data:image/svg" not in html and "Key:" not in html
    assert not AuthenticatorDevice.objects.filter(user=mfa_user).exists()
    # Nor can a code be confirmed for a device the attacker never saw.
    client.post(MFA_SETUP, {"token": "123456", "next": "/"})
    assert not AuthenticatorDevice.objects.filter(user=mfa_user).exists()
    assert client.get("/")["Location"] == f"{MFA_VERIFY}?next=/"


def test_the_emailed_link_opens_the_setup_once(client: Any, mfa_user: Any) -> None:
    client.force_login(mfa_user)
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(SEND_LINK, {"next": "/"})
    assert response["Location"] == f"{MFA_SETUP}?next=/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [mfa_user.email]
    link = re.search(r"https?://\S+(/accounts/mfa/enrol/\S+/)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    assert MFAEnrolment.objects.get(user=mfa_user).token_digest not in mail.outbox[0].body
    assert client.get(link.group(1))["Location"] == MFA_SETUP
    assert "data:image/svg" in client.get(MFA_SETUP).content.decode()
    # Single use: the same link again is refused, in this session or another.
    response = client.get(link.group(1))
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    assert _events(mfa_user) == ["mfa.enrolment_link_issued"]


def test_an_expired_link_or_one_of_another_user_is_refused(client: Any, mfa_user: Any, nurse_user: Any) -> None:
    client.force_login(mfa_user)
    expired = enrolment_path(mfa_user)
    MFAEnrolment.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(expired).status_code == 400
    assert client.get(enrolment_path(nurse_user)).status_code == 400
    assert "data:image/svg" not in client.get(MFA_SETUP).content.decode()


def test_the_link_lifetime_is_a_setting(mfa_user: Any, settings: Any) -> None:
    settings.MFA_ENROLMENT_LINK_HOURS = 2
    enrolment_path(mfa_user)
    enrolment = MFAEnrolment.objects.get(user=mfa_user)
    assert enrolment.expires_at - enrolment.created_at == pytest.approx(timedelta(hours=2), abs=timedelta(seconds=5))


def test_the_management_command_prints_a_working_link(client: Any, platform_admin: Any) -> None:
    out = StringIO()
    call_command("mfa_enrolment_link", platform_admin.username, stdout=out)
    path = re.search(r"https?://[^/\s]+(/accounts/mfa/enrol/\S+/)", out.getvalue()).group(1)  # type: ignore[union-attr]
    client.force_login(platform_admin)
    assert client.get(path)["Location"] == MFA_SETUP
    assert client.get(MFA_SETUP).status_code == 200


def test_enrolment_shows_ten_recovery_codes_once_and_each_works_once(client: Any, mfa_user: Any) -> None:
    client.force_login(mfa_user)
    _, codes = _enrol(client, mfa_user)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert "Two-factor authentication is set up" in mail.outbox[-1].subject
    assert _events(mfa_user) == ["mfa.enrolment_link_issued", "mfa.enrolled"]
    # Stored as keyed hashes only.
    stored = set(StaticToken.objects.filter(device__user=mfa_user).values_list("token", flat=True))
    assert len(stored) == 10 and not stored & {c.replace("-", "") for c in codes} and not stored & set(codes)

    client.logout()
    client.force_login(mfa_user)
    mail.outbox.clear()
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post(MFA_VERIFY, {"token": codes[3], "next": "/"})
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert _events(mfa_user)[-1] == "mfa.recovery_code_used"
    assert mail.outbox[0].to == [mfa_user.email] and "recovery code was used" in mail.outbox[0].subject

    client.logout()
    client.force_login(mfa_user)
    response = client.post(MFA_VERIFY, {"token": codes[3], "next": "/"})
    assert response.status_code == 400
    assert "That recovery code is not valid" in response.content.decode()
    assert client.get("/")["Location"] == f"{MFA_VERIFY}?next=/"
    assert client.post(MFA_VERIFY, {"token": codes[4], "next": "/"})["Location"] == "/"


def test_re_enrolment_needs_a_link_replaces_the_device_and_tells_the_user(client: Any, mfa_user: Any) -> None:
    old = authenticator_for(mfa_user)
    client.force_login(mfa_user)
    # With a device, the set-up page sends to the code check, not to a new secret.
    assert client.get(MFA_SETUP)["Location"] == MFA_VERIFY
    mail.outbox.clear()
    # Replacing it needs both factors again (staff/reauth.py), then the link's set-up page.
    assert client.get(enrolment_path(mfa_user))["Location"] == MFA_SETUP
    assert client.get(MFA_SETUP)["Location"] == "/accounts/mfa/reauthenticate/?next=%2Faccounts%2Fmfa%2Fsetup%2F"
    response = client.post(
        "/accounts/mfa/reauthenticate/", {"password": PASSWORD, "token": f"{totp(old.bin_key):06d}", "next": MFA_SETUP}
    )
    assert response["Location"] == MFA_SETUP
    new, _ = _enrol(client, mfa_user)
    assert list(AuthenticatorDevice.objects.filter(user=mfa_user)) == [new]
    assert not AuthenticatorDevice.objects.filter(pk=old.pk).exists()
    assert _events(mfa_user)[-1] == "mfa.re_enrolled"
    assert mail.outbox[-1].to == [mfa_user.email]
    assert "replacing the previous one" in mail.outbox[-1].body


# -- 9. What the app's database role can read ------------------------------------------------------


def _app_can(table: str, privilege: str = "SELECT") -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [table])
        if not cursor.fetchone()[0]:
            return False
        cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [settings.APP_DATABASE_USER, table, privilege])
        return bool(cursor.fetchone()[0])


def test_the_app_role_reads_no_sessions_and_no_clear_totp_keys() -> None:
    assert settings.DATABASES["default"]["USER"] == settings.APP_DATABASE_USER
    # Sessions live in Redis; django-otp's clear-key TOTP table is not installed.
    for table in ("django_session", "otp_totp_totpdevice"):
        assert not _app_can(table), table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT table_name FROM information_schema.role_table_grants "
            "WHERE grantee = %s AND privilege_type = 'SELECT'",
            [settings.APP_DATABASE_USER],
        )
        readable = {row[0] for row in cursor.fetchall()}
    assert "staff_authenticatordevice" in readable and "auth_user" in readable
    assert not readable & {"django_session", "otp_totp_totpdevice"}
    assert not apps.is_installed("django.contrib.sessions")
    assert not apps.is_installed("django_otp.plugins.otp_totp")


def test_totp_keys_are_encrypted_and_passwords_hashed_in_what_the_app_role_reads(nurse_user: Any) -> None:
    device = authenticator_for(nurse_user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT key FROM staff_authenticatordevice WHERE id = %s", [device.pk])
        raw = cursor.fetchone()[0]
        cursor.execute("SELECT password FROM auth_user WHERE id = %s", [nurse_user.pk])
        password = cursor.fetchone()[0]
    assert device.key not in raw and raw.startswith("gAAAAA")  # a Fernet token
    assert AuthenticatorDevice.objects.get(pk=device.pk).verify_token(f"{totp(device.bin_key):06d}")
    assert PASSWORD not in password and password.startswith(("pbkdf2_", "argon2", "bcrypt", "scrypt", "md5$"))


def test_sessions_are_kept_in_redis(client: Any, nurse_user: Any) -> None:
    client.post("/accounts/login/", {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")
    key = client.cookies["sessionid"].value
    store = caches[settings.SESSION_CACHE_ALIAS]
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.cache"
    assert store.get(f"django.contrib.sessions.cache{key}")["_auth_user_id"] == str(nurse_user.pk)
    assert client.get("/").status_code == 200
    client.post("/accounts/logout/")
    assert store.get(f"django.contrib.sessions.cache{key}") is None


def test_recovery_codes_model_is_a_static_device_proxy() -> None:
    assert RecoveryCodes._meta.proxy and RecoveryCodes.__mro__[1].__name__ == "StaticDevice"
