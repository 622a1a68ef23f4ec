"""Second-factor writes: enrolment links, authenticator set-up and replacement, recovery codes.

Every change a user should know about (a new or replaced authenticator, a recovery code used)
writes an audit row (django-auditlog, on the user) in the same transaction and emails the user
after commit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticToken

from healthcrm.tenancy import get_current_organization
from staff.models import (
    RECOVERY_CODE_COUNT,
    AuthenticatorDevice,
    MFAEnrolment,
    RecoveryCodes,
    enrolment_token_digest,
    recovery_code_digest,
)

# Audit events (LogEntry.additional_data["event"]).
EVENT_ENROLMENT_LINK = "mfa.enrolment_link_issued"
EVENT_ENROLLED = "mfa.enrolled"
EVENT_REENROLLED = "mfa.re_enrolled"
EVENT_RECOVERY_CODE_USED = "mfa.recovery_code_used"


def mfa_event_record(*, user: Any, event: str, detail: str = "") -> LogEntry:
    """An audit row on the user (actor and address from auditlog's request context), in the
    current organization's trail when there is one (its compliance role sees it, and RLS wants
    it), else a platform entry."""
    organization = get_current_organization()
    return LogEntry.objects.log_create(
        user,
        force_log=True,
        action=LogEntry.Action.UPDATE,
        changes={"second_factor": ["", event]},
        additional_data={
            "organization_id": organization.pk if organization is not None else None,
            "event": event,
            "detail": detail,
        },
    )


def _notify(user: Any, subject: str, body: str) -> None:
    if not user.email:
        return
    transaction.on_commit(
        lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=False)
    )


def has_confirmed_device(user: Any) -> bool:
    return AuthenticatorDevice.objects.filter(user=user, confirmed=True).exists()


# -- Enrolment links ---------------------------------------------------------------------------


def enrolment_link_issue(*, user: Any, base_url: str, issued_by: Any = None, email: bool = True) -> str:
    """Create a one-time enrolment link for `user` and return it (emailed to them when `email`).

    The token exists only in the link; the database keeps its keyed hash.
    """
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        MFAEnrolment.objects.create(
            user=user,
            token_digest=enrolment_token_digest(token),
            expires_at=timezone.now() + timedelta(hours=settings.MFA_ENROLMENT_LINK_HOURS),
            issued_by=issued_by,
        )
        mfa_event_record(user=user, event=EVENT_ENROLMENT_LINK)
        link = base_url.rstrip("/") + reverse("mfa_enrol", args=[token])
        if email:
            _notify(
                user,
                "Set up two-factor authentication",
                "Open this link to set up an authenticator app for HealthCRM (it works once, for "
                f"{settings.MFA_ENROLMENT_LINK_HOURS} hours):\n\n{link}\n\n"
                "If you did not ask for it, tell your administrator: someone may know your password.",
            )
    return link


def enrolment_link_redeem(*, user: Any, token: str) -> MFAEnrolment | None:
    """Use up a valid, unexpired, unused link of this user; None when there is none.

    A conditional UPDATE claims it, so two requests with the same link cannot both succeed.
    """
    now = timezone.now()
    claimed = MFAEnrolment.objects.filter(
        user=user, token_digest=enrolment_token_digest(token), used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if claimed != 1:
        return None
    return MFAEnrolment.objects.get(token_digest=enrolment_token_digest(token))


# -- Devices -----------------------------------------------------------------------------------


def authenticator_pending(user: Any) -> AuthenticatorDevice:
    """The user's unconfirmed authenticator (created once, so a reloaded QR code stays valid)."""
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=False).first()
    if device is None:
        device = AuthenticatorDevice.objects.create(user=user, name="Authenticator", confirmed=False)
    return device


@dataclass(frozen=True)
class Enrolled:
    device: AuthenticatorDevice
    recovery_codes: list[str]  # shown once, never stored in clear
    replaced: bool


def _recovery_code() -> str:
    raw = secrets.token_hex(5)  # 10 hex digits, 40 bits
    return f"{raw[:5]}-{raw[5:]}"


@transaction.atomic
def authenticator_confirm(*, device: AuthenticatorDevice) -> Enrolled:
    """Confirm a pending authenticator (its code was checked), replacing the user's other devices,
    and issue fresh recovery codes."""
    user: AbstractBaseUser = device.user
    old_devices = AuthenticatorDevice.objects.filter(user=user, confirmed=True).exclude(pk=device.pk)
    replaced = old_devices.exists()
    old_devices.delete()
    RecoveryCodes.objects.filter(user=user).delete()
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    codes_device = RecoveryCodes.objects.create(user=user, name="Recovery codes", confirmed=True)
    codes = [_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=codes_device, token=recovery_code_digest(c)) for c in codes)
    event = EVENT_REENROLLED if replaced else EVENT_ENROLLED
    mfa_event_record(user=user, event=event)
    _notify(
        user,
        "A new authenticator was set up" if replaced else "Two-factor authentication is set up",
        (
            "An authenticator app was set up for your HealthCRM account"
            + (", replacing the previous one" if replaced else "")
            + ". If this was not you, tell your administrator now."
        ),
    )
    return Enrolled(device=device, recovery_codes=codes, replaced=replaced)


def recovery_code_used(*, device: RecoveryCodes) -> None:
    """Audit and tell the user that one of their recovery codes was just used."""
    left = device.token_set.count()
    mfa_event_record(user=device.user, event=EVENT_RECOVERY_CODE_USED, detail=f"{left} left")
    _notify(
        device.user,
        "A recovery code was used",
        f"A recovery code was used to sign in to your HealthCRM account; {left} remain. "
        "If this was not you, tell your administrator now.",
    )
