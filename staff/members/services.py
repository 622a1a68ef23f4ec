"""Writes of staff accounts: invite, resend, accept an invitation, change a role, deactivate, reactivate.

Each runs in one transaction and leaves one django-auditlog entry on the membership (Membership is
tracked from settings; `compliance.audit.tag_security_entry` stamps the organization and the
`audit_event` set here), which the compliance role reads on the security events page. Emails go
after commit and say no more than the clinic's name and, for an invitation, the link.

Ending sessions needs no write here: `TenantMiddleware` signs out, at its next request, every
session that works in an organization where its user is no longer an active member.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from healthcrm.models import Membership, Organization
from healthcrm.roles import Role
from healthcrm.sessions import user_sessions_end
from staff.models import StaffInvitation, invitation_token_digest

# Audit events (LogEntry.additional_data["event"]), on the membership.
EVENT_INVITED = "staff.invited"
EVENT_ADDED = "staff.added"
EVENT_INVITATION_RESENT = "staff.invitation_resent"
EVENT_INVITATION_ACCEPTED = "staff.invitation_accepted"
EVENT_ROLE_CHANGED = "staff.role_changed"
EVENT_DEACTIVATED = "staff.deactivated"
EVENT_REACTIVATED = "staff.reactivated"


class InvitationLinkError(Exception):
    """An invitation link that cannot be used: unknown (`gone=False`), or used, replaced or expired."""

    def __init__(self, *, gone: bool) -> None:
        super().__init__("used, replaced or expired" if gone else "unknown")
        self.gone = gone


@dataclass(frozen=True)
class Invited:
    membership: Membership
    link: str | None  # None: an existing account was added (it signs in as before)


def _save_membership(membership: Membership, event: str) -> None:
    membership.audit_event = event  # type: ignore[attr-defined]
    membership.full_clean()
    membership.save()


def _record(membership: Membership, event: str, change: str) -> None:
    """An audit entry for an event that changes no membership field (a link resent or cancelled)."""
    LogEntry.objects.log_create(
        membership,
        force_log=True,
        action=LogEntry.Action.UPDATE,
        changes={"invitation": ["", change]},
        additional_data={"organization_id": membership.organization_id, "event": event},
    )


def _email(address: str, subject: str, body: str) -> None:
    transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [address]))


def _check_organization_cap(organization: Organization) -> None:
    since = timezone.now() - timedelta(hours=1)
    sent = StaffInvitation.objects.filter(organization=organization, created_at__gte=since).count()
    if sent >= settings.STAFF_INVITES_PER_HOUR:
        raise ValidationError(
            "This organization has sent %(cap)s invitations in the last hour: try again later.",
            params={"cap": settings.STAFF_INVITES_PER_HOUR},
            code="invite_cap",
        )


def _send_invitation(*, membership: Membership, invited_by: Any, base_url: str) -> str:
    """Revoke the member's open link, create a new one and email it; returns the link."""
    now = timezone.now()
    today = StaffInvitation.objects.filter(membership=membership, created_at__gte=now - timedelta(days=1)).count()
    if today >= settings.STAFF_INVITES_PER_MEMBER_PER_DAY:
        raise ValidationError(
            "This person was sent %(cap)s invitations in the last day: wait before sending another.",
            params={"cap": settings.STAFF_INVITES_PER_MEMBER_PER_DAY},
            code="member_invite_cap",
        )
    StaffInvitation.objects.filter(membership=membership, used_at__isnull=True, revoked_at__isnull=True).update(
        revoked_at=now
    )
    token = secrets.token_urlsafe(32)
    invitation = StaffInvitation(
        membership=membership,
        token_digest=invitation_token_digest(token),
        expires_at=now + timedelta(hours=settings.STAFF_INVITATION_HOURS),
        invited_by=invited_by,
    )
    invitation.full_clean()
    invitation.save()
    organization = membership.organization
    link = base_url.rstrip("/") + reverse("staff_invitation", args=[organization.pk, token])
    _email(
        membership.user.email,
        f"You are invited to {organization.name} on HealthCRM",
        f"You are invited to join {organization.name} on HealthCRM. Open this link to choose a password "
        f"and set up two-factor authentication (it works once, for {settings.STAFF_INVITATION_HOURS} hours):"
        f"\n\n{link}\n\nIf you did not expect this, ignore this email.",
    )
    return link


@transaction.atomic
def member_invite(
    *,
    organization: Organization,
    email: str,
    first_name: str,
    last_name: str,
    role: str,
    invited_by: Any,
    base_url: str,
) -> Invited:
    """Invite someone to the organization by email.

    An address with an account that has a password (a member of another organization) gets an
    active membership here and a short notice: no new account, nothing of theirs reset. A new
    address gets an account without a usable password, an inactive membership and a one-time
    link to set a password and enrol the second factor.
    """
    email = email.strip().lower()
    validate_email(email)
    if role not in Role.values:
        raise ValidationError({"role": "Choose one of the roles."})
    user_model = get_user_model()
    matches = list(user_model.objects.filter(Q(email__iexact=email) | Q(username__iexact=email))[:2])
    if len(matches) > 1:
        raise ValidationError(
            {"email": "Several accounts use this address: ask the platform administrator to add this person."}
        )
    user = matches[0] if matches else None
    if user is not None:
        existing = Membership.objects.filter(user=user, organization=organization).first()
        if existing is not None:
            if existing.is_active:
                raise ValidationError({"email": "This person is already a member of this organization."})
            raise ValidationError(
                {"email": "This person is already on the staff list (invited or deactivated): act on them there."}
            )
        if not user.is_active:
            raise ValidationError({"email": "This account is disabled: ask the platform administrator."})
    else:
        user = user_model(username=email, email=email, first_name=first_name.strip(), last_name=last_name.strip())
        user.set_unusable_password()
        user.full_clean()
        user.save()
    joins_now = user.has_usable_password()
    if not joins_now:
        _check_organization_cap(organization)
    membership = Membership(user=user, organization=organization, role=role, is_active=joins_now)
    _save_membership(membership, EVENT_ADDED if joins_now else EVENT_INVITED)
    if joins_now:
        _email(
            user.email,
            f"You were added to {organization.name} on HealthCRM",
            f"You now have access to {organization.name} on HealthCRM. Sign in as usual and choose it "
            "in the organization menu.",
        )
        return Invited(membership=membership, link=None)
    return Invited(
        membership=membership, link=_send_invitation(membership=membership, invited_by=invited_by, base_url=base_url)
    )


def member_is_pending(membership: Membership) -> bool:
    """Invited and not joined yet: inactive, and the account has no password or a link is open
    (an account that chose its password through another organization's invitation)."""
    if membership.is_active:
        return False
    return (
        not membership.user.has_usable_password()
        or StaffInvitation.objects.filter(membership=membership, used_at__isnull=True, revoked_at__isnull=True).exists()
    )


@transaction.atomic
def member_invitation_resend(*, membership: Membership, invited_by: Any, base_url: str) -> str:
    """Send a pending member a new link; the previous one stops working."""
    if not member_is_pending(membership):
        raise ValidationError("Only someone who has not joined yet can be sent an invitation.")
    _check_organization_cap(membership.organization)
    link = _send_invitation(membership=membership, invited_by=invited_by, base_url=base_url)
    _record(membership, EVENT_INVITATION_RESENT, "sent again")
    return link


def invitation_get(*, token: str) -> StaffInvitation:
    """The current organization's invitation with this token, if it can still be used.

    Raises InvitationLinkError: unknown (`gone=False`), or used, replaced or expired (`gone=True`).
    """
    invitation = (
        StaffInvitation.objects.select_related("membership__user", "organization")
        .filter(token_digest=invitation_token_digest(token))
        .first()
    )
    if invitation is None:
        raise InvitationLinkError(gone=False)
    if not invitation.is_open(timezone.now()) or invitation.membership.is_active:
        raise InvitationLinkError(gone=True)
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, password: str | None) -> Membership:
    """Use up an invitation (once: a conditional UPDATE claims it), set the invitee's password
    (already validated by the form; None only when the account has one) and activate the membership."""
    invitation = invitation_get(token=token)
    now = timezone.now()
    claimed = StaffInvitation.objects.filter(
        pk=invitation.pk, used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if claimed != 1:
        raise InvitationLinkError(gone=True)
    membership = invitation.membership
    user = membership.user
    if not user.has_usable_password():
        if not password:
            raise ValidationError("Choose a password.")
        user.set_password(password)
        user.save(update_fields=["password"])
    membership.is_active = True
    _save_membership(membership, EVENT_INVITATION_ACCEPTED)
    return membership


def _ensure_another_admin(membership: Membership) -> None:
    """Refuse to leave the organization without an active administrator (rows locked: two
    administrators demoting each other at once cannot both succeed)."""
    admins = list(
        Membership.objects.select_for_update()
        .filter(organization_id=membership.organization_id, role=Role.ADMIN, is_active=True)
        .values_list("pk", flat=True)
    )
    if not [pk for pk in admins if pk != membership.pk]:
        raise ValidationError(
            "This is the organization's last active administrator: make another member an administrator first.",
            code="last_admin",
        )


@transaction.atomic
def member_role_change(*, membership: Membership, role: str) -> Membership:
    """Give a member another role (one of healthcrm.roles.Role)."""
    if role not in Role.values:
        raise ValidationError({"role": "Choose one of the roles."})
    if role == membership.role:
        return membership
    if membership.role == Role.ADMIN and membership.is_active:
        _ensure_another_admin(membership)
    membership.role = role
    _save_membership(membership, EVENT_ROLE_CHANGED)
    return membership


@transaction.atomic
def member_deactivate(*, membership: Membership) -> Membership:
    """Take a member's access away: the membership becomes inactive, its open invitation is
    revoked, and every session of theirs in this organization ends at once (deleted from the
    session store; TenantMiddleware still signs out any it missed at its next request)."""
    revoked = StaffInvitation.objects.filter(
        membership=membership, used_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    if not membership.is_active:
        if revoked:
            _record(membership, EVENT_DEACTIVATED, "cancelled")
        return membership
    if membership.role == Role.ADMIN:
        _ensure_another_admin(membership)
    membership.is_active = False
    _save_membership(membership, EVENT_DEACTIVATED)
    # Every session of theirs working in this organization ends now, not at its next request.
    user_sessions_end(user_id=membership.user_id, organization_id=membership.organization_id, reason="deactivated")
    return membership


@transaction.atomic
def member_reactivate(*, membership: Membership) -> Membership:
    """Give a deactivated member their access back (someone who never joined is invited again instead)."""
    if membership.is_active:
        return membership
    if not membership.user.has_usable_password():
        raise ValidationError("This person has not set a password yet: send them an invitation instead.")
    if not membership.user.is_active:
        raise ValidationError("This account is disabled: ask the platform administrator.")
    membership.is_active = True
    _save_membership(membership, EVENT_REACTIVATED)
    return membership
