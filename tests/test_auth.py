"""Signing in and staying signed in: login, lockout, idle timeout, MFA, organizations, headers."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.core import mail
from django_otp.oath import totp

from healthcrm.tenancy import SESSION_KEY
from staff.models import AuthenticatorDevice as TOTPDevice
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.mfa import enrolment_path

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
MFA_VERIFY = "/accounts/mfa/"
MFA_SETUP = "/accounts/mfa/setup/"
SWITCH = "/organization/switch/"


def _heading(response: Any) -> str:
    """The page's <h1> text (the dashboard's is the current organization's name)."""
    match = re.search(r"<h1>(.*?)</h1>", response.content.decode(), re.S)
    assert match, "the page has no <h1>"
    return match.group(1).strip()


# -- Anonymous requests ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/patients/", "/compliance/access-log/"])
def test_anonymous_requests_are_sent_to_the_login_page(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={path}"


def test_login_page_has_username_and_password_fields(client: Any) -> None:
    response = client.get(LOGIN)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert 'name="password" type="password"' in html
    assert 'name="csrfmiddlewaretoken"' in html


@pytest.mark.parametrize("persona", ["nurse_user", "analyst_user", "other_org_user"])
def test_correct_login_redirects_to_the_dashboard_with_a_new_session_id(
    client: Any, persona: str, request: pytest.FixtureRequest
) -> None:
    user = request.getfixturevalue(persona)
    # An anonymous session with data in it: login must replace its id, not reuse it.
    client.get(LOGIN)
    session = client.session
    session["before_login"] = True
    session.save()
    before = client.cookies["sessionid"].value

    response = client.post(LOGIN, {"username": user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.1")

    assert response.status_code == 302
    assert response["Location"] == "/"
    after = client.cookies["sessionid"].value
    assert after != before, "the session id must change at login (session fixation)"
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert dashboard.context["user"] == user


def test_login_with_a_wrong_password_re_renders_the_form(client: Any, nurse_user: Any) -> None:
    response = client.post(LOGIN, {"username": nurse_user.username, "password": "wrong"}, REMOTE_ADDR="10.0.0.1")
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_login_honours_a_safe_next_and_ignores_an_offsite_one(client: Any, nurse_user: Any) -> None:
    response = client.post(
        LOGIN,
        {"username": nurse_user.username, "password": PASSWORD, "next": "/patients/"},
        REMOTE_ADDR="10.0.0.1",
    )
    assert response["Location"] == "/patients/"
    client.logout()
    response = client.post(
        LOGIN,
        {"username": nurse_user.username, "password": PASSWORD, "next": "https://evil.example/"},
        REMOTE_ADDR="10.0.0.1",
    )
    assert response["Location"] == "/"


# -- django-axes -------------------------------------------------------------------------------


def _fail(client: Any, username: str, ip: str, times: int) -> list[int]:
    return [
        client.post(LOGIN, {"username": username, "password": "not-the-password"}, REMOTE_ADDR=ip).status_code
        for _ in range(times)
    ]


def test_axes_locks_out_a_user_and_ip_after_the_failure_limit(client: Any, nurse_user: Any, settings: Any) -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    statuses = _fail(client, nurse_user.username, "203.0.113.7", settings.AXES_FAILURE_LIMIT)
    assert statuses[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)

    response = client.post(LOGIN, {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_axes_lockout_is_per_user_and_ip(client: Any, nurse_user: Any, analyst_user: Any, settings: Any) -> None:
    """Below the username and IP limits, the (username, IP) pair is locked, not either alone."""
    _fail(client, nurse_user.username, "203.0.113.7", settings.AXES_FAILURE_LIMIT)

    same_user_other_ip = client.post(
        LOGIN, {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="198.51.100.9"
    )
    assert same_user_other_ip.status_code == 302
    client.logout()
    other_user_same_ip = client.post(
        LOGIN, {"username": analyst_user.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.7"
    )
    assert other_user_same_ip.status_code == 302


def test_axes_limits_one_username_tried_from_many_ips(client: Any, nurse_user: Any, settings: Any) -> None:
    """A distributed guess: under the pair limit from each address, stopped by the per-username limit."""
    assert settings.AXES_USERNAME_FAILURE_LIMIT == 10
    for i in range(settings.AXES_USERNAME_FAILURE_LIMIT):
        assert _fail(client, nurse_user.username, f"198.51.100.{i + 1}", 1) in ([200], [429])

    fresh_ip = client.post(LOGIN, {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="192.0.2.200")

    assert fresh_ip.status_code == 429
    assert "_auth_user_id" not in client.session


def test_axes_limits_one_ip_spraying_many_usernames(client: Any, org_a: Any, settings: Any) -> None:
    """Password spraying: one failure per account, stopped by the per-IP limit; other IPs still sign in."""
    assert settings.AXES_IP_FAILURE_LIMIT == 20
    victim = UserFactory()
    MembershipFactory(user=victim, organization=org_a)
    for i in range(settings.AXES_IP_FAILURE_LIMIT):
        _fail(client, f"someone{i}@example.test", "203.0.113.50", 1)

    sprayer = client.post(LOGIN, {"username": victim.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.50")
    assert sprayer.status_code == 429
    assert "_auth_user_id" not in client.session

    elsewhere = client.post(LOGIN, {"username": victim.username, "password": PASSWORD}, REMOTE_ADDR="192.0.2.201")
    assert elsewhere.status_code == 302


def test_axes_a_few_typos_from_a_shared_clinic_ip_lock_nobody_else(
    client: Any, nurse_user: Any, analyst_user: Any, settings: Any
) -> None:
    """Below the per-IP limit, one user's lockout behind the clinic's NAT leaves colleagues alone."""
    _fail(client, nurse_user.username, "203.0.113.60", settings.AXES_FAILURE_LIMIT)
    assert (
        client.post(
            LOGIN, {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.60"
        ).status_code
        == 429
    )
    colleague = client.post(
        LOGIN, {"username": analyst_user.username, "password": PASSWORD}, REMOTE_ADDR="203.0.113.60"
    )
    assert colleague.status_code == 302


def test_axes_takes_the_ip_from_our_client_ip_callable(client: Any, nurse_user: Any, settings: Any) -> None:
    """X-Forwarded-For is believed only from a trusted proxy (healthcrm.security.client_ip)."""
    from axes.models import AccessAttempt

    settings.TRUSTED_PROXIES = ["10.0.0.2"]
    client.post(
        LOGIN,
        {"username": nurse_user.username, "password": "x"},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="192.0.2.44",
    )
    client.post(
        LOGIN,
        {"username": nurse_user.username, "password": "x"},
        REMOTE_ADDR="198.51.100.3",
        HTTP_X_FORWARDED_FOR="192.0.2.55",
    )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"192.0.2.44", "198.51.100.3"}


# -- Idle timeout ------------------------------------------------------------------------------


def _set_last_seen(client: Any, seconds_ago: int) -> None:
    session = client.session
    session["healthcrm_last_seen"] = int(time.time()) - seconds_ago
    session.save()


def test_idle_session_is_signed_out(client_for: Any, nurse_user: Any, settings: Any) -> None:
    settings.SESSION_IDLE_TIMEOUT = 60
    client = client_for(nurse_user)
    assert client.get("/").status_code == 200
    _set_last_seen(client, 61)

    response = client.get("/patients/")

    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next=/patients/"
    assert "_auth_user_id" not in client.session
    assert client.get("/")["Location"] == f"{LOGIN}?next=/"
    page = client.get(LOGIN)
    assert "signed out after a period of inactivity" in page.content.decode()


def test_idle_timeout_answers_htmx_with_a_redirect_header(client_for: Any, nurse_user: Any, settings: Any) -> None:
    settings.SESSION_IDLE_TIMEOUT = 60
    client = client_for(nurse_user)
    client.get("/")
    _set_last_seen(client, 120)
    response = client.get("/patients/?q=x", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == LOGIN


def test_recently_active_session_stays_signed_in(client_for: Any, nurse_user: Any, settings: Any) -> None:
    settings.SESSION_IDLE_TIMEOUT = 60
    client = client_for(nurse_user)
    client.get("/")
    _set_last_seen(client, 30)

    response = client.get("/")

    assert response.status_code == 200
    assert client.session["healthcrm_last_seen"] >= int(time.time()) - 1, "activity refreshes last seen"


def test_session_ends_at_its_absolute_lifetime_even_when_active(
    client_for: Any, nurse_user: Any, settings: Any
) -> None:
    settings.SESSION_COOKIE_AGE = 3600
    client = client_for(nurse_user)
    assert client.get("/").status_code == 200
    session = client.session
    session["healthcrm_signed_in_at"] = int(time.time()) - 3601
    session["healthcrm_last_seen"] = int(time.time()) - 5  # busy right up to the end
    session.save()

    response = client.get("/patients/")

    assert response.status_code == 302 and response["Location"] == f"{LOGIN}?next=/patients/"
    assert "_auth_user_id" not in client.session
    assert "Your session has ended" in client.get(LOGIN).content.decode()


def test_sign_in_stamps_the_session(client: Any, nurse_user: Any) -> None:
    from tests.factories import PASSWORD

    client.post(LOGIN, {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="192.0.2.1")
    assert int(time.time()) - client.session["healthcrm_signed_in_at"] <= 2


# -- Second factor -----------------------------------------------------------------------------


@pytest.fixture
def mfa_org(db: None) -> Any:
    return OrganizationFactory(slug="secure", name="Secure Clinic", require_mfa=True)


@pytest.fixture
def mfa_user(mfa_org: Any) -> Any:
    user = UserFactory(username="nurse@secure.example")
    MembershipFactory(user=user, organization=mfa_org, role="nurse")
    return user


@pytest.fixture
def no_throttle(settings: Any) -> None:
    # django-otp delays a device for a second after a wrong code; the tests don't wait.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def test_mfa_setup_then_verify(client: Any, mfa_user: Any, no_throttle: None) -> None:
    client.force_login(mfa_user)

    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == f"{MFA_VERIFY}?next=/"
    # Other pages are guarded too, not only the dashboard.
    assert client.get("/patients/")["Location"] == f"{MFA_VERIFY}?next=/patients/"

    response = client.get(f"{MFA_VERIFY}?next=/")
    assert response.status_code == 302
    assert response["Location"] == f"{MFA_SETUP}?next=/"

    # The password alone shows no secret: the set-up page asks for the emailed enrolment link.
    response = client.get(f"{MFA_SETUP}?next=/")
    assert response.status_code == 200
    assert "check your email for the enrolment link" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=mfa_user).exists()
    assert client.get(enrolment_path(mfa_user))["Location"] == MFA_SETUP

    response = client.get(f"{MFA_SETUP}?next=/")
    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<img class="qr" src="data:image/svg\+xml;base64,[A-Za-z0-9+/=]+"', html)
    device = TOTPDevice.objects.get(user=mfa_user)
    assert device.confirmed is False
    # Reloading the page keeps the same unconfirmed device (the QR code stays valid).
    client.get(f"{MFA_SETUP}?next=/")
    assert TOTPDevice.objects.filter(user=mfa_user).count() == 1

    wrong = f"{(totp(device.bin_key) + 1) % 1_000_000:06d}"
    response = client.post(f"{MFA_SETUP}?next=/", {"token": wrong, "next": "/"})
    assert response.status_code == 400
    assert "That code is not valid" in response.content.decode()
    assert client.get("/").status_code == 302

    response = client.post(f"{MFA_SETUP}?next=/", {"token": f"{totp(device.bin_key):06d}", "next": "/"})
    # The recovery codes, shown once, then on to `next`.
    assert response.status_code == 200
    assert len(re.findall(r"<li><code>[0-9a-f]{5}-[0-9a-f]{5}</code></li>", response.content.decode())) == 10
    assert 'href="/"' in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed is True
    assert client.get("/").status_code == 200

    # A second sign-in with a confirmed device is asked for a code, not for a new device.
    client.logout()
    client.force_login(mfa_user)
    assert client.get("/")["Location"] == f"{MFA_VERIFY}?next=/"
    response = client.get(f"{MFA_VERIFY}?next=/")
    assert response.status_code == 200
    assert client.get(f"{MFA_SETUP}")["Location"] == MFA_VERIFY
    # The code used at set-up cannot be replayed; the next time step's code is accepted (tolerance 1).
    response = client.post(MFA_VERIFY, {"token": f"{totp(device.bin_key, drift=1):06d}", "next": "/"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_mfa_verify_refuses_a_wrong_code(client: Any, mfa_user: Any, no_throttle: None) -> None:
    device = TOTPDevice.objects.create(user=mfa_user, name="Authenticator", confirmed=True)
    client.force_login(mfa_user)
    wrong = f"{(totp(device.bin_key) + 1) % 1_000_000:06d}"
    response = client.post(MFA_VERIFY, {"token": wrong, "next": "/"})
    assert response.status_code == 400
    assert "That code is not valid" in response.content.decode()
    assert client.get("/")["Location"] == f"{MFA_VERIFY}?next=/"


def test_mfa_verify_says_to_wait_after_a_wrong_code(client: Any, mfa_user: Any) -> None:
    device = TOTPDevice.objects.create(user=mfa_user, name="Authenticator", confirmed=True)
    client.force_login(mfa_user)
    wrong = f"{(totp(device.bin_key) + 1) % 1_000_000:06d}"
    client.post(MFA_VERIFY, {"token": wrong, "next": "/"})
    # Right code, too soon: django-otp refuses it; the user is told why instead of "not valid".
    response = client.post(MFA_VERIFY, {"token": f"{totp(device.bin_key):06d}", "next": "/"})
    assert response.status_code == 400
    assert "Too many wrong codes: wait 1 second, then try again." in response.content.decode()


def test_mfa_verify_ignores_an_offsite_next(client: Any, mfa_user: Any) -> None:
    device = TOTPDevice.objects.create(user=mfa_user, name="Authenticator", confirmed=True)
    client.force_login(mfa_user)
    response = client.post(MFA_VERIFY, {"token": f"{totp(device.bin_key):06d}", "next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.parametrize("persona", ["nurse_user", "analyst_user", "other_org_user"])
def test_organizations_without_mfa_never_ask(client_for: Any, persona: str, request: pytest.FixtureRequest) -> None:
    client = client_for(request.getfixturevalue(persona))
    assert client.get("/").status_code == 200


# -- Organizations -----------------------------------------------------------------------------


@pytest.fixture
def float_nurse(org_a: Any, org_b: Any) -> Any:
    user = UserFactory(username="float.nurse@example.test")
    MembershipFactory(user=user, organization=org_a, role="nurse")
    MembershipFactory(user=user, organization=org_b, role="nurse")
    return user


def test_organization_switch(client_for: Any, float_nurse: Any, org_a: Any, org_b: Any) -> None:
    client = client_for(float_nurse)
    # With no choice yet, the first membership by organization name is current ("Lake" < "North").
    response = client.get("/")
    assert _heading(response) == org_b.name

    response = client.post(SWITCH, {"organization": org_a.pk})
    assert response.status_code == 302
    assert response["Location"] == "/"
    response = client.get("/")
    assert _heading(response) == org_a.name == "North Clinic"
    assert client.session[SESSION_KEY] == org_a.pk

    client.post(SWITCH, {"organization": org_b.pk})
    assert _heading(client.get("/")) == org_b.name == "Lake Clinic"


def test_organization_switch_refuses_an_organization_of_someone_else(
    client_for: Any, nurse_user: Any, analyst_user: Any, other_org_user: Any, org_a: Any, org_b: Any
) -> None:
    stranger = OrganizationFactory(slug="elsewhere", name="Elsewhere Clinic")
    for user in (nurse_user, analyst_user):
        client = client_for(user)
        for target in (org_b.pk, stranger.pk, 999999, "not-a-number"):
            response = client.post(SWITCH, {"organization": target}, follow=True)
            assert response.status_code == 200
            assert "You are not a member of that organization." in response.content.decode()
            assert _heading(response) == org_a.name
            assert client.session[SESSION_KEY] == org_a.pk
        client.logout()
    client = client_for(other_org_user)
    response = client.post(SWITCH, {"organization": org_a.pk}, follow=True)
    assert "You are not a member of that organization." in response.content.decode()
    assert _heading(response) == org_b.name


def test_organization_switch_needs_post_and_a_signed_in_user(client: Any, float_nurse: Any, org_b: Any) -> None:
    assert client.post(SWITCH, {"organization": org_b.pk})["Location"] == f"{LOGIN}?next={SWITCH}"
    client.force_login(float_nurse)
    assert client.get(SWITCH).status_code == 405


def test_a_session_in_a_dropped_membership_ends_and_the_next_sign_in_falls_back(
    client_for: Any, float_nurse: Any, org_a: Any
) -> None:
    """A session pointing at an organization the user has left does not keep its access: it ends
    at once (staff accounts, issue #11), and signing in again lands in the organization left."""
    from healthcrm.models import Membership
    from healthcrm.tenancy import organization_context

    client = client_for(float_nurse)
    client.post(SWITCH, {"organization": org_a.pk})
    with organization_context(org_a):
        Membership.objects.filter(user=float_nurse, organization=org_a).update(is_active=False)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    client = client_for(float_nurse)
    assert _heading(client.get("/")) == "Lake Clinic"


def test_user_without_membership_sees_the_no_organization_page(client_for: Any, db: None) -> None:
    client = client_for(UserFactory(username="lonely@example.test"))
    response = client.get("/")
    assert response.status_code == 403
    assert "You are not a member of any organization" in response.content.decode()
    assert client.get("/patients/").status_code == 403


# -- Operations and headers --------------------------------------------------------------------


def test_healthz_reports_database_redis_and_worker(client: Any) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"status", "database", "redis", "worker"}
    assert (body["status"], body["database"], body["redis"]) == ("ok", "ok", "ok")
    assert isinstance(body["worker"], str) and body["worker"]


def test_healthz_reports_a_broken_redis_with_503(client: Any, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]) == ("error", "ok")
    assert body["redis"].startswith("error")


@pytest.mark.parametrize("signed_in", [False, True])
def test_security_headers(client_for: Any, client: Any, nurse_user: Any, signed_in: bool) -> None:
    if signed_in:
        client = client_for(nurse_user)
    response = client.get("/" if signed_in else LOGIN)
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


def test_pages_have_no_inline_scripts_or_styles(client_for: Any, nurse_user: Any) -> None:
    """CSP forbids inline code, so none may be in our templates (it would silently not run)."""
    client = client_for(nurse_user)
    for path in ("/", "/patients/", "/accounts/password_change/"):
        html = client.get(path).content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert "<style" not in html, path
        assert not re.search(r"\son[a-z]+=", html), path
        assert " style=" not in html, path


@pytest.mark.parametrize("signed_in", [False, True])
def test_unknown_url_shows_the_friendly_404_page(client: Any, nurse_user: Any, settings: Any, signed_in: bool) -> None:
    settings.DEBUG = False
    if signed_in:
        client.force_login(nurse_user)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    html = response.content.decode()
    assert "Not found" in html
    assert "Traceback" not in html and "URLconf" not in html and "Page not found at" not in html


# -- Password reset ----------------------------------------------------------------------------


@pytest.fixture
def reset_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The password-reset tasks the form enqueues (their arguments), not sent to the broker."""
    from staff.tasks import password_reset_email_task

    enqueued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(password_reset_email_task, "delay", lambda *args: enqueued.append(args))
    return enqueued


def _run(enqueued: list[tuple[Any, ...]]) -> None:
    from staff.tasks import password_reset_email_task

    for args in enqueued:
        password_reset_email_task.apply(args=args).get()


def test_password_reset_sends_one_email(client: Any, nurse_user: Any, reset_tasks: list[tuple[Any, ...]]) -> None:
    response = client.get("/accounts/password_reset/")
    assert response.status_code == 200
    assert 'name="email"' in response.content.decode()

    response = client.post("/accounts/password_reset/", {"email": nurse_user.email})

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    # Sent by the task, which gets the user's id, never the address.
    assert mail.outbox == []
    assert len(reset_tasks) == 1 and nurse_user.email not in repr(reset_tasks)
    _run(reset_tasks)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [nurse_user.email]
    assert "/accounts/reset/" in mail.outbox[0].body
    assert client.get(response["Location"]).status_code == 200


def test_password_reset_does_the_same_work_for_known_and_unknown_addresses(
    client: Any, nurse_user: Any, reset_tasks: list[tuple[Any, ...]]
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    work = {}
    for email in (nurse_user.email, "nobody@example.test"):
        before = len(reset_tasks)
        with CaptureQueriesContext(connection) as queries:
            response = client.post("/accounts/password_reset/", {"email": email})
        assert response["Location"] == "/accounts/password_reset/done/"
        work[email] = (len(queries), len(reset_tasks) - before)
    assert work[nurse_user.email] == work["nobody@example.test"]
    assert work[nurse_user.email][1] == 1


def test_password_reset_for_an_unknown_email_reveals_nothing(
    client: Any, db: None, reset_tasks: list[tuple[Any, ...]]
) -> None:
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.test"})
    assert response["Location"] == "/accounts/password_reset/done/"
    _run(reset_tasks)
    assert mail.outbox == []
