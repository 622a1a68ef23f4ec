"""Issue #11 flow in real Chromium: a clinic administrator invites a new staff member, who opens the
emailed link in another browser, chooses a password, enrols an authenticator and lands signed in."""

from __future__ import annotations

import re
from base64 import b32decode
from typing import Any

import pytest
from django.core import mail
from django_otp.oath import totp

from tests.axe import axe_violations
from tests.factories import PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from tests.mfa import authenticator_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LINK = re.compile(r"https?://[^/\s]+(/accounts/invitation/\d+/[\w-]+/)")


@pytest.fixture
def clinic_admin(transactional_db: None, settings: Any) -> tuple[Any, Any]:
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    organization = OrganizationFactory(slug="north", name="North Clinic", require_mfa=True)
    admin = UserFactory(username="admin@north.example", first_name="Ada", last_name="Admin")
    MembershipFactory(user=admin, organization=organization, role="admin")
    return organization, authenticator_for(admin)


def _code(key: bytes) -> str:
    # real-clock: the live server checks the code against the same real clock, within its tolerance.
    return f"{totp(key):06d}"


def test_invite_a_staff_member_who_sets_a_password_and_enrols_mfa(
    live_server: Any, browser: Any, page: Any, clinic_admin: tuple[Any, Any]
) -> None:
    from playwright.sync_api import expect

    base = live_server.url
    _organization, device = clinic_admin
    page.goto(base + "/accounts/login/")
    page.get_by_label("Email or username").fill("admin@north.example")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("6-digit code or recovery code").fill(_code(device.bin_key))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(base + "/")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Staff").click()
    page.wait_for_url(base + "/staff/")
    expect(page.locator("main h1")).to_have_text("Staff")
    assert axe_violations(page) == []
    page.get_by_role("link", name="Invite a staff member").click()
    page.wait_for_url(base + "/staff/invite/")
    assert axe_violations(page) == []
    page.get_by_label("Given name").fill("Robin")
    page.get_by_label("Family name").fill("Hale")
    page.get_by_label("Email").fill("robin.hale@example.test")
    page.get_by_label("Role").select_option("nurse")
    page.get_by_role("button", name="Send invitation").click()
    page.wait_for_url(base + "/staff/")
    row = page.locator("#staff-members tbody tr", has_text="robin.hale@example.test")
    expect(row).to_contain_text("Invited")
    expect(row).to_contain_text("Nurse")
    assert axe_violations(page) == []

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["robin.hale@example.test"]
    link = LINK.search(mail.outbox[0].body)
    assert link, mail.outbox[0].body

    # The invitee, in a browser of their own.
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    invitee = context.new_page()
    try:
        invitee.goto(base + link.group(1))
        expect(invitee.locator("main h1")).to_have_text("Join North Clinic")
        assert axe_violations(invitee) == []
        invitee.locator("#id_new_password1").fill("short")
        invitee.locator("#id_new_password2").fill("short")
        invitee.get_by_role("button", name="Set password and continue").click()
        expect(invitee.locator("main")).to_contain_text("too short")
        assert axe_violations(invitee) == []
        invitee.locator("#id_new_password1").fill("quiet-harbour-lantern-42")
        invitee.locator("#id_new_password2").fill("quiet-harbour-lantern-42")
        invitee.get_by_role("button", name="Set password and continue").click()
        invitee.wait_for_url(re.compile(r"/accounts/mfa/setup/$"))
        assert axe_violations(invitee) == []
        secret = invitee.locator("code.secret").inner_text().strip()
        invitee.get_by_label("6-digit code").fill(_code(b32decode(secret)))
        invitee.get_by_role("button", name="Confirm").click()
        expect(invitee.locator("main h1")).to_have_text("Two-factor authentication is set up")
        expect(invitee.locator(".recovery-codes li")).to_have_count(10)
        assert axe_violations(invitee) == []
        invitee.get_by_role("link", name="Continue").click()
        invitee.wait_for_url(base + "/")
        expect(invitee.locator("main h1")).to_have_text("North Clinic")
        expect(invitee.locator(".who")).to_contain_text("robin.hale@example.test · Nurse")
        assert axe_violations(invitee) == []
        # The link was used up.
        response = invitee.goto(base + link.group(1))
        assert response is not None and response.status == 410
        assert axe_violations(invitee) == []
    finally:
        context.close()

    page.reload()
    expect(page.locator("#staff-members tbody tr", has_text="robin.hale@example.test")).to_contain_text("Active")
