"""Reads of staff accounts: the organization's members with their status, one member by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.http import Http404
from django.utils import timezone

from healthcrm.models import Membership, Organization
from staff.models import StaffInvitation

ACTIVE = "active"
INVITED = "invited"
INVITATION_EXPIRED = "invitation_expired"
DEACTIVATED = "deactivated"
STATUS_LABELS = {
    ACTIVE: "Active",
    INVITED: "Invited",
    INVITATION_EXPIRED: "Invitation expired",
    DEACTIVATED: "Deactivated",
}


@dataclass(frozen=True)
class Member:
    membership: Membership
    status: str
    invitation_expires_at: datetime | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @property
    def pending(self) -> bool:
        return self.status in (INVITED, INVITATION_EXPIRED)

    @property
    def full_name(self) -> str:
        return self.membership.user.get_full_name()


def _status(membership: Membership, invitation: StaffInvitation | None, now: datetime) -> str:
    if membership.is_active:
        return ACTIVE
    if invitation is None or invitation.revoked_at or invitation.used_at:
        return DEACTIVATED  # removed, or an invitation cancelled before it was used
    return INVITED if invitation.expires_at > now else INVITATION_EXPIRED


def _members(memberships: list[Membership]) -> list[Member]:
    latest: dict[int, StaffInvitation] = {}
    pending = [m.pk for m in memberships if not m.is_active]
    if pending:
        for invitation in StaffInvitation.objects.filter(membership_id__in=pending).order_by("created_at", "pk"):
            latest[invitation.membership_id] = invitation
    now = timezone.now()
    result = []
    for membership in memberships:
        invitation = latest.get(membership.pk)
        status = _status(membership, invitation, now)
        expires = invitation.expires_at if invitation is not None and status == INVITED else None
        result.append(Member(membership=membership, status=status, invitation_expires_at=expires))
    return result


def member_list(organization: Organization) -> list[Member]:
    """The organization's members (active, invited, deactivated), by name then email: two queries."""
    memberships = list(
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .order_by("-is_active", "user__last_name", "user__first_name", "user__email", "pk")
    )
    return _members(memberships)


def member_get(organization: Organization, pk: int) -> Member:
    """One member of the organization; 404 for another organization's id (or none)."""
    try:
        membership = Membership.objects.select_related("user", "organization").get(organization=organization, pk=pk)
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise Http404("No member matches the given id.") from None
    return _members([membership])[0]
