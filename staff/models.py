"""Second-factor devices whose secrets the app's database role cannot read in clear, and the
one-time links that let a user enrol one.

django-otp's own TOTPDevice stores its key as hex in a plain column: anyone with SQL as the app
role could copy every authenticator. `AuthenticatorDevice` is the same TOTP device (same fields,
same verification through django_otp.oath.TOTP) with the key encrypted like PHI. Recovery codes
are django-otp static tokens stored as keyed hashes (`RecoveryCodes`, a proxy of StaticDevice).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from base64 import b32encode
from binascii import unhexlify
from typing import Any
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models
from django.utils import timezone
from django_otp.models import Device, ThrottlingMixin, TimestampMixin
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.util import random_hex

from healthcrm.crypto import EncryptedCharField
from healthcrm.models import TenantModel


def _default_key() -> str:
    return random_hex(20)


class AuthenticatorDevice(TimestampMixin, ThrottlingMixin, Device):
    """A TOTP authenticator app (RFC 6238), its key encrypted at rest. Mirrors django-otp's
    TOTPDevice (django_otp/plugins/otp_totp/models.py), which we do not install."""

    key = EncryptedCharField(max_length=80, default=_default_key)
    step: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(default=30)
    t0: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    digits: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(
        choices=[(6, 6), (8, 8)], default=6
    )
    tolerance: models.PositiveSmallIntegerField[int, int] = models.PositiveSmallIntegerField(default=1)
    drift: models.SmallIntegerField[int, int] = models.SmallIntegerField(default=0)
    last_t: models.BigIntegerField[int, int] = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "authenticator app"

    @property
    def bin_key(self) -> bytes:
        return unhexlify(self.key.encode())

    def get_throttle_factor(self) -> int:
        return getattr(settings, "OTP_TOTP_THROTTLE_FACTOR", 1)

    def verify_token(self, token: Any) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        try:
            number = int(token)
        except (TypeError, ValueError):
            verified = False
        else:
            totp = TOTP(self.bin_key, self.step, self.t0, self.digits, self.drift)
            totp.time = time.time()
            # Only a later time step than the last accepted one: a code cannot be replayed.
            verified = totp.verify(number, self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                self.drift = totp.drift
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified

    @property
    def config_url(self) -> str:
        """The otpauth:// URI authenticator apps scan (Key Uri Format)."""
        issuer = settings.OTP_TOTP_ISSUER.replace(":", "")
        label = f"{issuer}:{self.user.get_username()}"
        params = urlencode(
            {"secret": b32encode(self.bin_key), "algorithm": "SHA1", "digits": self.digits, "period": self.step}
        )
        return f"otpauth://totp/{quote(label)}?{params}&issuer={quote(issuer)}"


RECOVERY_CODE_COUNT = 10


def recovery_code_digest(code: str) -> str:
    """What the database keeps of a recovery code: a keyed hash (StaticToken.token holds 16 chars)."""
    normalized = "".join(code.split()).replace("-", "").lower()
    return hmac.new(settings.SECRET_KEY.encode(), f"recovery-code:{normalized}".encode(), hashlib.sha256).hexdigest()[
        :16
    ]


class RecoveryCodes(StaticDevice):
    """django-otp's static device, its tokens stored as `recovery_code_digest`s."""

    class Meta:
        proxy = True
        verbose_name = "recovery codes"

    def verify_token(self, token: Any) -> bool:
        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        match = self.token_set.filter(token=recovery_code_digest(str(token))).first()
        if match is None:
            self.throttle_increment()
            return False
        match.delete()  # once each
        self.throttle_reset(commit=False)
        self.set_last_used_timestamp(commit=False)
        self.save()
        return True


def enrolment_token_digest(token: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"mfa-enrolment:{token}".encode(), hashlib.sha256).hexdigest()


class MFAEnrolment(models.Model):
    """A one-time link that lets its user register an authenticator (first time or replacement).

    Only the keyed hash of the link's token is stored; the link goes to the user's email (or is
    printed by `manage.py mfa_enrolment_link` for an operator to hand over).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mfa_enrolments")
    token_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["user", "expires_at"], name="staff_mfaenrol_user_expires")]

    def __str__(self) -> str:
        return f"MFA enrolment link #{self.pk}"


def invitation_token_digest(token: str) -> str:
    """What the database keeps of a staff invitation's token: its keyed hash (as for enrolment links)."""
    return hmac.new(settings.SECRET_KEY.encode(), f"staff-invitation:{token}".encode(), hashlib.sha256).hexdigest()


class StaffInvitation(TenantModel):
    """A one-time link that lets an invited member set their password, then enrol their second factor.

    One row per link sent: a resend revokes the open one and adds a row (so the rows also count
    sends, for the caps). Only the keyed hash of the token is stored; the token exists in the
    emailed link only. The membership stays inactive until the link is used.
    """

    membership = models.ForeignKey("healthcrm.Membership", on_delete=models.CASCADE, related_name="+")
    token_digest = models.CharField(max_length=64, unique=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["organization", "membership", "created_at"], name="staff_invite_member_created")
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(used_at__isnull=True) | models.Q(revoked_at__isnull=True),
                name="staff_invitation_used_or_revoked",
                violation_error_message="An invitation is either used or revoked, not both.",
            ),
        ]

    def __str__(self) -> str:
        return f"Staff invitation #{self.pk}"

    def is_open(self, now: Any) -> bool:
        return self.used_at is None and self.revoked_at is None and self.expires_at > now
