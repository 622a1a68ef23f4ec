"""Staff accounts in the staff UI (issue #11, "Missing, that a clinic expects"): a clinic's
administrators list, invite, re-role, deactivate and reactivate members; the invitee's one-time link
sets a password and continues into the second factor's enrolment; every change is audited."""

from __future__ import annotations

import re
from base64 import b32decode
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.cache import caches
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp

from healthcrm.models import Membership
from healthcrm.tenancy import SESSION_KEY, organization_context
from staff.members.services import member_deactivate
from staff.models import StaffInvitation
from tests.factories import PASSWORD, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

STAFF = "/staff/"
INVITE = "/staff/invite/"
LINK = re.compile(r"https?://[^/\s]+(/accounts/invitation/\d+/[\w-]+/)")
GOOD_PASSWORD = "quiet-harbour-lantern-42"


@pytest.fixture(autouse=True)
def no_throttle(settings: Any) -> None:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


def _membership(user: Any, organization: Any) -> Membership:
    with organization_context(organization):
        return Membership.objects.get(user=user, organization=organization)


def _events(organization: Any, membership: Membership) -> list[str]:
    with organization_context(organization):
        entries = LogEntry.objects.get_for_object(membership).order_by("timestamp", "pk")
        return [entry.additional_data.get("event", "") for entry in entries]


def _invite(client: Any, callbacks: Any, **fields: str) -> Any:
    data = {"first_name": "Robin", "last_name": "Hale", "email": "robin.hale@example.test", "role": "nurse"}
    data.update(fields)
    with callbacks(execute=True):
        return client.post(INVITE, data)


def _link_of(message: Any) -> str:
    match = LINK.search(message.body)
    assert match, message.body
    return match.group(1)


# -- Who may open the pages -----------------------------------------------------------------------


def test_the_admin_sees_only_this_organizations_members(
    client_for: Any,
    org_a: Any,
    admin_user: Any,
    nurse_user: Any,
    other_org_user: Any,
    django_assert_max_num_queries: Any,
) -> None:
    for n in range(5):
        MembershipFactory(user=UserFactory(username=f"extra{n}@north.example"), organization=org_a)
    client = client_for(admin_user)
    client.get("/")  # the session chooses its organization
    with django_assert_max_num_queries(14):
        response = client.get(STAFF)
    assert response.status_code == 200
    body = response.content.decode()
    assert "nurse@north.example" in body and "admin@north.example" in body and "extra4@north.example" in body
    assert "nurse@lake.example" not in body
    assert "Active" in body and "Never" in body


@pytest.mark.parametrize(
    "persona", ["provider_user", "nurse_user", "coordinator_user", "frontdesk_user", "analyst_user", "compliance_user"]
)
def test_other_roles_get_403(request: Any, client_for: Any, persona: str, org_a: Any, admin_user: Any) -> None:
    user = request.getfixturevalue(persona)
    admins = _membership(admin_user, org_a)
    client = client_for(user)
    assert client.get(STAFF).status_code == 403
    assert client.get(INVITE).status_code == 403
    assert client.post(INVITE, {"email": "x@example.test", "role": "admin"}).status_code == 403
    assert client.get(f"{STAFF}{admins.pk}/").status_code == 403
    assert client.post(f"{STAFF}{admins.pk}/", {"role": "nurse"}).status_code == 403
    for action in ("deactivate", "reactivate", "resend"):
        assert client.post(f"{STAFF}{admins.pk}/{action}/").status_code == 403
    assert _membership(admin_user, org_a).role == "admin"
    assert not Membership.objects.filter(user__email="x@example.test").exists()


def test_another_organizations_member_is_not_found(
    client_for: Any, org_a: Any, org_b: Any, nurse_user: Any, other_org_user: Any
) -> None:
    lake_admin = UserFactory(username="admin@lake.example")
    MembershipFactory(user=lake_admin, organization=org_b, role="admin")
    north_nurse = _membership(nurse_user, org_a)
    for user in (other_org_user, lake_admin):
        client = client_for(user)
        assert client.get(f"{STAFF}{north_nurse.pk}/").status_code == 404
        assert client.post(f"{STAFF}{north_nurse.pk}/", {"role": "admin"}).status_code == 404
        for action in ("deactivate", "reactivate", "resend"):
            assert client.post(f"{STAFF}{north_nurse.pk}/{action}/").status_code == 404
    lake_list = client_for(lake_admin).get(STAFF).content.decode()
    assert "nurse@north.example" not in lake_list and "nurse@lake.example" in lake_list
    north_nurse = _membership(nurse_user, org_a)
    assert north_nurse.is_active and north_nurse.role == "nurse"


def test_the_platform_admin_working_in_the_organization_manages_it(
    client_for: Any, org_a: Any, nurse_user: Any
) -> None:
    platform = UserFactory(username="platform@example.test", is_staff=True, is_superuser=True)
    client = client_for(platform)
    session = client.session
    session[SESSION_KEY] = org_a.pk
    session.save()
    assert "nurse@north.example" in client.get(STAFF).content.decode()
    membership = _membership(nurse_user, org_a)
    assert client.post(f"{STAFF}{membership.pk}/", {"role": "coordinator"}).status_code == 302
    assert _membership(nurse_user, org_a).role == "coordinator"


def test_the_staff_link_shows_only_to_roles_that_can_open_it(
    client_for: Any, admin_user: Any, nurse_user: Any, compliance_user: Any, analyst_user: Any
) -> None:
    def has_link(user: Any) -> bool:
        client = client_for(user)
        return f'href="{STAFF}"' in client.get("/").content.decode()

    assert has_link(admin_user)
    assert not any(has_link(user) for user in (nurse_user, compliance_user, analyst_user))


# -- Inviting -------------------------------------------------------------------------------------


def test_inviting_a_new_address_creates_an_account_without_password_and_emails_a_one_time_link(
    client_for: Any, org_a: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(admin_user)
    response = _invite(client, django_capture_on_commit_callbacks, email="Robin.Hale@Example.test")
    assert response.status_code == 302 and response["Location"] == STAFF
    user = get_user_model().objects.get(email="robin.hale@example.test")
    assert not user.has_usable_password() and user.get_full_name() == "Robin Hale"
    membership = _membership(user, org_a)
    assert not membership.is_active and membership.role == "nurse"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["robin.hale@example.test"]
    path = _link_of(message)
    token = path.rstrip("/").rsplit("/", 1)[1]
    with organization_context(org_a):
        invitation = StaffInvitation.objects.get(membership=membership)
    # Only the keyed hash is stored; the email says no more than the clinic and the link.
    assert token not in invitation.token_digest and invitation.token_digest not in message.body
    assert "Robin" not in message.body and "nurse" not in message.body.lower()
    assert "Invited" in client.get(STAFF).content.decode()
    assert _events(org_a, membership) == ["staff.invited"]


def test_inviting_a_member_of_another_organization_adds_a_membership_and_resets_nothing(
    client_for: Any, org_a: Any, admin_user: Any, other_org_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    password_before = other_org_user.password
    users_before = get_user_model().objects.count()
    response = _invite(
        client_for(admin_user), django_capture_on_commit_callbacks, email="NURSE@lake.example", role="frontdesk"
    )
    assert response.status_code == 302
    assert get_user_model().objects.count() == users_before
    other_org_user.refresh_from_db()
    assert other_org_user.password == password_before
    membership = _membership(other_org_user, org_a)
    assert membership.is_active and membership.role == "frontdesk"
    with organization_context(org_a):
        assert not StaffInvitation.objects.exists()
    assert len(mail.outbox) == 1 and not LINK.search(mail.outbox[0].body)
    assert _events(org_a, membership) == ["staff.added"]


def test_the_invite_form_shows_errors(
    client_for: Any, admin_user: Any, nurse_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(admin_user)
    response = _invite(
        client, django_capture_on_commit_callbacks, email="not an address", role="owner", first_name="x" * 200
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a valid email address." in body and "Select a valid choice." in body and "at most 150" in body
    response = _invite(client, django_capture_on_commit_callbacks, email="nurse@north.example")
    assert response.status_code == 400
    assert "already a member of this organization" in response.content.decode()
    assert mail.outbox == []


def test_invitations_are_capped(
    client_for: Any, org_a: Any, admin_user: Any, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.STAFF_INVITES_PER_HOUR = 3
    settings.STAFF_INVITES_PER_MEMBER_PER_DAY = 2
    client = client_for(admin_user)
    assert _invite(client, django_capture_on_commit_callbacks, email="one@example.test").status_code == 302
    membership = _membership(get_user_model().objects.get(email="one@example.test"), org_a)
    resend = f"{STAFF}{membership.pk}/resend/"
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(resend).status_code == 302
        refused = client.post(resend)
    assert refused.status_code == 400 and "invitations in the last day" in refused.content.decode()
    assert _invite(client, django_capture_on_commit_callbacks, email="two@example.test").status_code == 302
    refused = _invite(client, django_capture_on_commit_callbacks, email="three@example.test")
    assert refused.status_code == 400 and "in the last hour" in refused.content.decode()
    assert not get_user_model().objects.filter(email="three@example.test").exists()
    assert len(mail.outbox) == 3
    # An hour later the organization may invite again.
    with time_machine.travel(timezone.now() + timedelta(hours=1, minutes=1)):
        assert _invite(client, django_capture_on_commit_callbacks, email="three@example.test").status_code == 302


# -- The invitation link --------------------------------------------------------------------------


def test_the_link_sets_a_password_enrols_the_second_factor_and_signs_in(
    client: Any, client_for: Any, org_a: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _invite(client_for(admin_user), django_capture_on_commit_callbacks)
    path = _link_of(mail.outbox[0])
    invitee = Client()
    page = invitee.get(path)
    assert page.status_code == 200 and "Join North Clinic" in page.content.decode()
    # Opening the link uses nothing up; Django's password validators apply.
    weak = invitee.post(path, {"new_password1": "12345678", "new_password2": "12345678"})
    assert weak.status_code == 400 and "too common" in weak.content.decode()
    response = invitee.post(path, {"new_password1": GOOD_PASSWORD, "new_password2": GOOD_PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/mfa/enrol/")
    setup = invitee.get(response["Location"], follow=True)
    secret = re.search(r'<code class="secret">([A-Z2-7]+)</code>', setup.content.decode())
    assert secret, setup.content.decode()
    codes = invitee.post("/accounts/mfa/setup/", {"token": f"{totp(b32decode(secret.group(1))):06d}"})
    assert codes.status_code == 200 and "recovery-codes" in codes.content.decode()
    dashboard = invitee.get("/")
    assert dashboard.status_code == 200 and "<h1>North Clinic</h1>" in dashboard.content.decode()
    user = get_user_model().objects.get(email="robin.hale@example.test")
    assert user.check_password(GOOD_PASSWORD)
    membership = _membership(user, org_a)
    assert membership.is_active
    assert _events(org_a, membership) == ["staff.invited", "staff.invitation_accepted"]
    # Single use: the link answers 410 afterwards, to anyone.
    assert Client().get(path).status_code == 410
    assert Client().post(path, {"new_password1": "x", "new_password2": "x"}).status_code == 410


def test_unknown_links_are_404_and_expired_ones_410(
    client_for: Any, org_a: Any, org_b: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    _invite(client_for(admin_user), django_capture_on_commit_callbacks)
    path = _link_of(mail.outbox[0])
    anonymous = Client()
    assert anonymous.get(path[:-5] + "zzzz/").status_code == 404
    # The right token under another organization is unknown there.
    assert anonymous.get(path.replace(f"/{org_a.pk}/", f"/{org_b.pk}/")).status_code == 404
    assert anonymous.get(path.replace(f"/{org_a.pk}/", "/999999999/")).status_code == 404
    with time_machine.travel(timezone.now() + timedelta(hours=settings.STAFF_INVITATION_HOURS, minutes=1)):
        expired = anonymous.get(path)
        assert expired.status_code == 410 and "has expired" in expired.content.decode()
        assert anonymous.post(path, {"new_password1": GOOD_PASSWORD, "new_password2": GOOD_PASSWORD}).status_code == 410
        assert "Invitation expired" in client_for(admin_user).get(STAFF).content.decode()
    assert not get_user_model().objects.get(email="robin.hale@example.test").has_usable_password()


def test_a_resend_replaces_the_link_and_a_cancel_revokes_it(
    client_for: Any, org_a: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    client = client_for(admin_user)
    _invite(client, django_capture_on_commit_callbacks)
    first = _link_of(mail.outbox[0])
    membership = _membership(get_user_model().objects.get(email="robin.hale@example.test"), org_a)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"{STAFF}{membership.pk}/resend/").status_code == 302
    second = _link_of(mail.outbox[1])
    assert first != second
    assert Client().get(first).status_code == 410
    assert Client().get(second).status_code == 200
    assert client.post(f"{STAFF}{membership.pk}/deactivate/").status_code == 302
    assert Client().get(second).status_code == 410
    assert "Deactivated" in client.get(f"{STAFF}{membership.pk}/").content.decode()
    assert _events(org_a, membership) == ["staff.invited", "staff.invitation_resent", "staff.deactivated"]


# -- Roles, the last administrator, deactivation --------------------------------------------------


def test_the_admin_changes_a_role_and_it_is_audited(
    client_for: Any, org_a: Any, admin_user: Any, nurse_user: Any
) -> None:
    client = client_for(admin_user)
    membership = _membership(nurse_user, org_a)
    assert client.post(f"{STAFF}{membership.pk}/", {"role": "owner"}).status_code == 400
    response = client.post(f"{STAFF}{membership.pk}/", {"role": "coordinator"})
    assert response.status_code == 302
    assert _membership(nurse_user, org_a).role == "coordinator"
    with organization_context(org_a):
        entry = LogEntry.objects.get_for_object(membership).latest("timestamp")
    assert entry.additional_data["event"] == "staff.role_changed"
    assert entry.changes_dict["role"] == ["nurse", "coordinator"]
    assert entry.actor == admin_user


def test_the_last_active_admin_cannot_demote_or_deactivate_themself(
    client_for: Any, org_a: Any, admin_user: Any, nurse_user: Any
) -> None:
    client = client_for(admin_user)
    own = _membership(admin_user, org_a)
    for response in (
        client.post(f"{STAFF}{own.pk}/", {"role": "nurse"}),
        client.post(f"{STAFF}{own.pk}/deactivate/"),
    ):
        assert response.status_code == 400
        assert "last active administrator" in response.content.decode()
    own = _membership(admin_user, org_a)
    assert own.is_active and own.role == "admin"
    # A deactivated administrator does not count.
    second = UserFactory(username="admin2@north.example")
    MembershipFactory(user=second, organization=org_a, role="admin", is_active=False)
    assert client.post(f"{STAFF}{own.pk}/deactivate/").status_code == 400
    # With another active administrator, stepping down is allowed.
    nurse = _membership(nurse_user, org_a)
    assert client.post(f"{STAFF}{nurse.pk}/", {"role": "admin"}).status_code == 302
    assert client.post(f"{STAFF}{own.pk}/", {"role": "provider"}).status_code == 302
    assert _membership(admin_user, org_a).role == "provider"


def test_deactivation_ends_the_members_session_at_the_next_request_and_reactivation_restores_access(
    client_for: Any, org_a: Any, admin_user: Any, nurse_user: Any
) -> None:
    nurse = Client()
    nurse.post("/accounts/login/", {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.7")
    key = nurse.cookies["sessionid"].value
    store = caches[settings.SESSION_CACHE_ALIAS]
    assert nurse.get("/").status_code == 200
    membership = _membership(nurse_user, org_a)

    admin = client_for(admin_user)
    assert admin.post(f"{STAFF}{membership.pk}/deactivate/").status_code == 302
    assert not _membership(nurse_user, org_a).is_active

    response = nurse.get("/patients/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert store.get(f"django.contrib.sessions.cache{key}") is None
    assert nurse.get("/").status_code == 302
    assert "Deactivated" in admin.get(STAFF).content.decode()

    assert admin.post(f"{STAFF}{membership.pk}/reactivate/").status_code == 302
    nurse.post("/accounts/login/", {"username": nurse_user.username, "password": PASSWORD}, REMOTE_ADDR="10.0.0.7")
    assert nurse.get("/").status_code == 200
    assert _events(org_a, membership)[-2:] == ["staff.deactivated", "staff.reactivated"]


def test_deactivation_in_one_organization_keeps_a_session_working_in_another(
    org_a: Any, org_b: Any, admin_user: Any
) -> None:
    floater = UserFactory(username="float@example.test")
    MembershipFactory(user=floater, organization=org_a, role="nurse")
    MembershipFactory(user=floater, organization=org_b, role="nurse")
    client = Client()
    client.force_login(floater)
    client.post("/organization/switch/", {"organization": org_b.pk})
    with organization_context(org_a):
        member_deactivate(membership=Membership.objects.get(user=floater, organization=org_a))
    response = client.get("/")
    assert response.status_code == 200 and "<h1>Lake Clinic</h1>" in response.content.decode()
    # And back in the organization that removed them, the session ends.
    session = client.session
    session[SESSION_KEY] = org_a.pk
    session.save()
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_the_compliance_officer_sees_the_staff_events(
    client_for: Any,
    org_a: Any,
    admin_user: Any,
    nurse_user: Any,
    compliance_user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    client = client_for(admin_user)
    _invite(client, django_capture_on_commit_callbacks)
    membership = _membership(nurse_user, org_a)
    client.post(f"{STAFF}{membership.pk}/", {"role": "frontdesk"})
    client.post(f"{STAFF}{membership.pk}/deactivate/")
    client.post(f"{STAFF}{membership.pk}/reactivate/")
    page = client_for(compliance_user).get("/compliance/security-events/").content.decode()
    for event in ("staff.invited", "staff.role_changed", "staff.deactivated", "staff.reactivated"):
        assert event in page


def test_an_invitee_who_already_chose_a_password_elsewhere_just_accepts(
    client_for: Any, org_a: Any, org_b: Any, admin_user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    lake_admin = UserFactory(username="admin@lake.example")
    MembershipFactory(user=lake_admin, organization=org_b, role="admin")
    _invite(client_for(lake_admin), django_capture_on_commit_callbacks)
    _invite(client_for(admin_user), django_capture_on_commit_callbacks)
    lake_link, north_link = _link_of(mail.outbox[0]), _link_of(mail.outbox[1])
    invitee = Client()
    invitee.post(north_link, {"new_password1": GOOD_PASSWORD, "new_password2": GOOD_PASSWORD})
    user = get_user_model().objects.get(email="robin.hale@example.test")
    assert "Invited" in client_for(lake_admin).get(STAFF).content.decode()
    page = Client().get(lake_link)
    assert page.status_code == 200 and "Accept the invitation" in page.content.decode()
    assert "new_password1" not in page.content.decode()
    response = Client().post(lake_link, {"new_password1": "other-password-999", "new_password2": "other-password-999"})
    assert response.status_code == 302 and response["Location"] == "/"
    user.refresh_from_db()
    assert user.check_password(GOOD_PASSWORD)
    assert _membership(user, org_b).is_active
