"""Signed, expiring patient links (confirm, cancel, unsubscribe): usable without signing in.

The token carries ids only (organization, outbox message, action), signed with SECRET_KEY through
TimestampSigner, so it holds no PHI and cannot be forged or altered; it expires after
ENGAGEMENT_LINK_MAX_AGE seconds (default 14 days).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "engagement.patient-link"
ACTIONS = ("confirm", "cancel", "unsubscribe")


@dataclass(frozen=True)
class LinkClaims:
    organization_id: int
    message_id: int
    action: str


def link_max_age() -> int:
    return int(settings.ENGAGEMENT_LINK_MAX_AGE)


def make_token(*, organization_id: int, message_id: int, action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"Unknown link action {action!r}")
    return signing.TimestampSigner(salt=SALT).sign_object([organization_id, message_id, action], compress=True)


def read_token(token: str, *, max_age: int | None = None) -> LinkClaims:
    """Raises signing.BadSignature (or its subclass SignatureExpired)."""
    organization_id, message_id, action = signing.TimestampSigner(salt=SALT).unsign_object(
        token, max_age=link_max_age() if max_age is None else max_age
    )
    if action not in ACTIONS:
        raise signing.BadSignature("Unknown action")
    return LinkClaims(int(organization_id), int(message_id), str(action))


def public_url(path: str) -> str:
    base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
    return base.rstrip("/") + path


def link_for(*, organization_id: int, message_id: int, action: str) -> str:
    token = make_token(organization_id=organization_id, message_id=message_id, action=action)
    return public_url(reverse("engagement:patient_link", args=[token]))
