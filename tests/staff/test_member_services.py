"""The staff-account services on their own: refusals, single use, the last administrator."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from healthcrm.models import Membership
from healthcrm.tenancy import organization_context
from staff.members.services import (
    InvitationLinkError,
    invitation_accept,
    member_deactivate,
    member_invite,
    member_reactivate,
    member_role_change,
)
from staff.models import StaffInvitation, invitation_token_digest

pytestmark = pytest.mark.django_db


def _invite(org: Any, admin: Any, email: str = "sam@example.test", role: str = "nurse") -> Any:
    return member_invite(
        organization=org,
        email=email,
        first_name="Sam",
        last_name="Lee",
        role=role,
        invited_by=admin,
        base_url="http://t",
    )


def _token(link: str | None) -> str:
    assert link is not None
    return link.rstrip("/").rsplit("/", 1)[1]


def test_an_invitation_is_used_once_and_only_its_hash_is_stored(org_a: Any, admin_user: Any) -> None:
    with organization_context(org_a):
        invited = _invite(org_a, admin_user)
        token = _token(invited.link)
        stored = StaffInvitation.objects.get(membership=invited.membership)
        assert stored.token_digest == invitation_token_digest(token) != token
        membership = invitation_accept(token=token, password="quiet-harbour-lantern-42")
        assert membership.is_active and membership.user.check_password("quiet-harbour-lantern-42")
        with pytest.raises(InvitationLinkError) as used:
            invitation_accept(token=token, password="another-password-77")
        assert used.value.gone
        with pytest.raises(InvitationLinkError) as unknown:
            invitation_accept(token="not-a-token", password="another-password-77")
        assert not unknown.value.gone


def test_refusals(org_a: Any, admin_user: Any, nurse_user: Any) -> None:
    with organization_context(org_a):
        with pytest.raises(ValidationError, match="already a member"):
            _invite(org_a, admin_user, email="NURSE@north.example")
        with pytest.raises(ValidationError, match="Choose one of the roles"):
            _invite(org_a, admin_user, role="owner")
        with pytest.raises(ValidationError):
            _invite(org_a, admin_user, email="not an address")
        pending = _invite(org_a, admin_user).membership
        member_deactivate(membership=pending)  # cancels the invitation
        assert not StaffInvitation.objects.filter(membership=pending, revoked_at__isnull=True).exists()
        with pytest.raises(ValidationError, match="has not set a password"):
            member_reactivate(membership=pending)


def test_the_last_active_administrator_stays(org_a: Any, admin_user: Any, nurse_user: Any) -> None:
    with organization_context(org_a):
        admin = Membership.objects.get(user=admin_user)
        for change in (
            lambda: member_role_change(membership=admin, role="nurse"),
            lambda: member_deactivate(membership=admin),
        ):
            with pytest.raises(ValidationError) as refused:
                change()
            assert refused.value.error_list[0].code == "last_admin"
        # A pending administrator does not count either.
        _invite(org_a, admin_user, email="new.admin@example.test", role="admin")
        with pytest.raises(ValidationError):
            member_deactivate(membership=admin)
        nurse = Membership.objects.get(user=nurse_user)
        member_role_change(membership=nurse, role="admin")
        member_deactivate(membership=admin)
        admin.refresh_from_db()
        assert not admin.is_active
        member_reactivate(membership=admin)
        admin.refresh_from_db()
        assert admin.is_active and admin.role == "admin"
