"""Sessions and accounts under control (issue 13 item 6): the session index, ending sessions from
the sessions page, deactivation ending every session at once, re-authentication with the second
factor before a password or authenticator change, and a password reset that never skips it."""

from __future__ import annotations

import re
from datetime import timedelta
from importlib import import_module
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.conf import settings
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp

from healthcrm.models import UserSession
from healthcrm.sessions import session_digest, user_agent_summary
from healthcrm.tenancy import organization_context
from staff.members.services import member_deactivate
from staff.models import AuthenticatorDevice
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.mfa import authenticator_for

pytestmark = pytest.mark.django_db

SESSIONS = "/staff/sessions/"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.fixture(autouse=True)
def no_throttle(settings: Any) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def _store() -> Any:
    return import_module(settings.SESSION_ENGINE).SessionStore()


def _sign_in(user: Any, user_agent: str = CHROME, ip: str = "203.0.113.7") -> Client:
    """A browser signing in through the sign-in page (the second factor too when the user has one)."""
    browser = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    response = browser.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=True).first()
    if device is not None:
        response = browser.post("/accounts/mfa/", {"token": f"{totp(device.bin_key):06d}"})
        assert response.status_code == 302
    return browser


def _signed_in(browser: Client) -> bool:
    response = browser.get("/")
    return response.status_code == 200


def _key(browser: Client) -> str:
    return browser.cookies[settings.SESSION_COOKIE_NAME].value


def test_sign_in_indexes_the_session_and_sign_out_forgets_it(nurse_user: Any) -> None:
    browser = _sign_in(nurse_user)
    row = UserSession.objects.get(user=nurse_user)
    assert row.key_digest == session_digest(_key(browser))
    assert row.session_key == _key(browser)  # decrypted: stored as ciphertext (healthcrm.crypto)
    assert (row.user_agent, row.ip) == ("Chrome on Windows", "203.0.113.7")
    browser.post("/accounts/logout/")
    assert not UserSession.objects.filter(user=nurse_user).exists()


def test_user_agent_summary_names_browser_and_system() -> None:
    assert user_agent_summary(FIREFOX) == "Firefox on Linux"
    assert user_agent_summary("") == "Unknown browser on unknown system"


def test_requests_touch_the_session_at_most_once_a_minute(nurse_user: Any) -> None:
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        browser = _sign_in(nurse_user)
        first = UserSession.objects.get(user=nurse_user).last_seen_at
        clock.shift(timedelta(seconds=40))
        assert _signed_in(browser)
        assert UserSession.objects.get(user=nurse_user).last_seen_at == first
        clock.shift(timedelta(seconds=30))
        assert _signed_in(browser)
        assert UserSession.objects.get(user=nurse_user).last_seen_at == first + timedelta(seconds=70)


def test_compliance_and_admins_see_sessions_others_do_not(
    compliance_user: Any, admin_user: Any, nurse_user: Any, frontdesk_user: Any, org_b: Any
) -> None:
    _sign_in(nurse_user, FIREFOX, "198.51.100.4")
    outsider = UserFactory(username="lake-officer")
    MembershipFactory(user=outsider, organization=org_b, role="compliance")
    for viewer in (compliance_user, admin_user):
        page = _sign_in(viewer).get(SESSIONS)
        assert page.status_code == 200
        text = page.content.decode()
        assert "Firefox on Linux" in text and "198.51.100.4" in text
    assert _sign_in(frontdesk_user).get(SESSIONS).status_code == 403
    # Another organization's officer sees none of this organization's sessions.
    assert "Firefox on Linux" not in _sign_in(outsider).get(SESSIONS).content.decode()


def test_ending_one_session_signs_that_browser_out_at_once(
    org_a: Any, compliance_user: Any, nurse_user: Any, org_b: Any
) -> None:
    laptop = _sign_in(nurse_user, CHROME)
    phone = _sign_in(nurse_user, FIREFOX)
    officer = _sign_in(compliance_user)
    laptop_row = UserSession.objects.get(key_digest=session_digest(_key(laptop)))

    outsider = UserFactory(username="lake-officer")
    MembershipFactory(user=outsider, organization=org_b, role="compliance")
    assert _sign_in(outsider).post(f"/staff/sessions/{laptop_row.pk}/end/").status_code == 404
    assert _signed_in(laptop)

    response = officer.post(f"/staff/sessions/{laptop_row.pk}/end/")
    assert response.status_code == 302
    assert not _store().exists(_key(laptop))
    assert not _signed_in(laptop)
    assert _signed_in(phone)
    with organization_context(org_a):
        entry = LogEntry.objects.get(additional_data__event="session.ended")
    assert entry.object_pk == str(nurse_user.pk) and entry.actor == compliance_user


def test_a_reader_without_the_right_cannot_end_sessions(frontdesk_user: Any, nurse_user: Any) -> None:
    laptop = _sign_in(nurse_user)
    row = UserSession.objects.get(user=nurse_user)
    assert _sign_in(frontdesk_user).post(f"/staff/sessions/{row.pk}/end/").status_code == 403
    assert _signed_in(laptop)


def test_end_all_ends_every_session_of_the_member(org_a: Any, admin_user: Any, nurse_user: Any) -> None:
    browsers = [_sign_in(nurse_user, CHROME), _sign_in(nurse_user, FIREFOX)]
    with organization_context(org_a):
        membership = nurse_user.memberships.get()
    response = _sign_in(admin_user).post(f"/staff/{membership.pk}/sessions/end/")
    assert response.status_code == 302
    assert not UserSession.objects.filter(user=nurse_user).exists()
    for browser in browsers:
        assert not _signed_in(browser)


def test_deactivation_ends_every_session_at_once(org_a: Any, admin_user: Any, nurse_user: Any) -> None:
    browsers = [_sign_in(nurse_user, CHROME), _sign_in(nurse_user, FIREFOX)]
    keys = [_key(b) for b in browsers]
    other_clinic = OrganizationFactory(slug="elsewhere", name="Elsewhere")
    MembershipFactory(user=nurse_user, organization=other_clinic, role="nurse")
    elsewhere = _sign_in(nurse_user)
    elsewhere.post("/organization/switch/", {"organization": other_clinic.pk})
    with organization_context(org_a):
        # Through the staff page, as an administrator does it.
        membership = nurse_user.memberships.get(organization=org_a)
        response = _sign_in(admin_user).post(f"/staff/{membership.pk}/deactivate/")
        assert response.status_code == 302
    # Gone from the store before any request of theirs: nothing waits for their next click.
    for key in keys:
        assert not _store().exists(key)
    assert not UserSession.objects.filter(key_digest__in=[session_digest(k) for k in keys]).exists()
    # A session working in another organization where they are still a member goes on.
    assert _store().exists(_key(elsewhere))


def test_the_deactivation_service_ends_sessions_itself(org_a: Any, nurse_user: Any) -> None:
    browser = _sign_in(nurse_user)
    with organization_context(org_a):
        member_deactivate(membership=nurse_user.memberships.get())
    assert not _store().exists(_key(browser))


def test_disabling_an_account_ends_its_sessions_everywhere(nurse_user: Any) -> None:
    browser = _sign_in(nurse_user)
    nurse_user.is_active = False
    nurse_user.save()
    assert not _store().exists(_key(browser))


# -- Re-authentication -------------------------------------------------------------------------------


@pytest.fixture
def mfa_nurse(db: None) -> Any:
    organization = OrganizationFactory(slug="secure", name="Secure Clinic", require_mfa=True)
    user = UserFactory(username="nurse@secure.example", email="nurse@secure.example")
    MembershipFactory(user=user, organization=organization, role="nurse")
    authenticator_for(user)
    return user


CHANGE = "/accounts/password_change/"
REAUTH = "/accounts/mfa/reauthenticate/"
NEW = {"old_password": PASSWORD, "new_password1": "a-new-long-passphrase-1", "new_password2": "a-new-long-passphrase-1"}


def test_a_password_change_needs_both_factors_within_the_window(mfa_nurse: Any, settings: Any) -> None:
    start = timezone.now()
    device = AuthenticatorDevice.objects.get(user=mfa_nurse)
    with time_machine.travel(start, tick=False) as clock:
        browser = _sign_in(mfa_nurse)
        assert browser.get(CHANGE).status_code == 200  # the code at sign-in was just now
        clock.shift(timedelta(seconds=settings.RECENT_AUTH_SECONDS + 1))
        assert browser.get(CHANGE)["Location"] == f"{REAUTH}?next=%2Faccounts%2Fpassword_change%2F"
        assert browser.post(CHANGE, NEW)["Location"].startswith(REAUTH)
        mfa_nurse.refresh_from_db()
        assert mfa_nurse.check_password(PASSWORD)

        # The password alone is not enough; a wrong code neither.
        assert browser.post(REAUTH, {"password": PASSWORD, "token": "000000"}).status_code == 400
        assert browser.post(REAUTH, {"password": "wrong", "token": f"{totp(device.bin_key):06d}"}).status_code == 400
        assert browser.get(CHANGE)["Location"].startswith(REAUTH)
        clock.shift(timedelta(seconds=31))  # a new TOTP step
        response = browser.post(REAUTH, {"password": PASSWORD, "token": f"{totp(device.bin_key):06d}", "next": CHANGE})
        assert response["Location"] == CHANGE
        assert browser.post(CHANGE, NEW).status_code == 302
        mfa_nurse.refresh_from_db()
        assert mfa_nurse.check_password(NEW["new_password1"])


def test_a_password_reset_never_skips_the_second_factor(mfa_nurse: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from staff.tasks import password_reset_email_task

    enqueued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(password_reset_email_task, "delay", lambda *args: enqueued.append(args))
    browser = Client()
    browser.post("/accounts/password_reset/", {"email": mfa_nurse.email})
    for args in enqueued:
        password_reset_email_task.apply(args=args).get()
    link = re.search(r"/accounts/reset/[^/\s]+/[^/\s]+/", mail.outbox[-1].body)
    assert link is not None
    response = browser.get(link.group(0))
    response = browser.post(
        response["Location"], {"new_password1": "reset-long-passphrase-9", "new_password2": "reset-long-passphrase-9"}
    )
    assert response["Location"] == "/accounts/reset/done/"
    # The reset signs nobody in; signing in with the new password still asks for the code.
    assert browser.get("/")["Location"].startswith("/accounts/login/")
    browser.post("/accounts/login/", {"username": mfa_nurse.username, "password": "reset-long-passphrase-9"})
    assert browser.get("/")["Location"].startswith("/accounts/mfa/")
    assert browser.get(CHANGE)["Location"].startswith("/accounts/mfa/")
