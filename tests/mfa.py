"""Second-factor helpers for tests: a confirmed authenticator, a verified session, an enrolment link."""

from __future__ import annotations

import time
from typing import Any

from django_otp import DEVICE_ID_SESSION_KEY

from staff.models import AuthenticatorDevice
from staff.reauth import RECENT_AUTH_KEY
from staff.services import enrolment_link_issue


def authenticator_for(user: Any) -> AuthenticatorDevice:
    return AuthenticatorDevice.objects.create(user=user, name="Authenticator", confirmed=True)


def verify_session(client: Any, user: Any) -> AuthenticatorDevice:
    """Mark the client's (signed-in) session as having passed the second factor, as otp_login does."""
    device = AuthenticatorDevice.objects.filter(user=user, confirmed=True).first() or authenticator_for(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    # As the code check at sign-in does: a recent proof of both factors (staff/reauth.py).
    session[RECENT_AUTH_KEY] = int(time.time())
    session.save()
    return device


def enrolment_path(user: Any) -> str:
    """The path of a fresh one-time enrolment link for `user` (not emailed)."""
    return enrolment_link_issue(user=user, base_url="", email=False)
