"""Signed, expiring patient links (confirm, cancel, unsubscribe, survey): usable without signing in.

The token carries ids only (organization, outbox message, action), signed with SECRET_KEY through
TimestampSigner, so it holds no PHI and cannot be forged or altered. A link expires
ENGAGEMENT_LINK_MAX_AGE seconds (default 14 days) after it was issued, and an appointment's
confirm/cancel link (and a waitlist offer's "slot" link) at the appointment's (the slot's) start at
the latest (`link_expires_at`). Each use is
recorded once (`engagement.models.LinkUse`): confirm/cancel links act once, unsubscribe links stay
usable (opting out twice is harmless). A survey link records one answer, and no longer than
SURVEY_VALID_FOR after the survey was issued (an answer weeks after the visit says little about it).
A questionnaire link keeps one response (saved as the patient goes, completed once) for
QUESTIONNAIRE_VALID_FOR (engagement/questionnaires/services.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

SALT = "engagement.patient-link"
ACTIONS: tuple[str, ...] = ("confirm", "cancel", "unsubscribe", "survey", "slot", "questionnaire")
# An education page (engagement/education/): opening it is what it records (no action to take).
ACTIONS += ("education",)
APPOINTMENT_ACTIONS = ("confirm", "cancel")
# How long a survey (its link, and an SMS reply to it) accepts an answer after it was sent.
SURVEY_VALID_FOR = timedelta(days=7)
# How long a questionnaire link accepts answers (saved progress included) after it was issued.
QUESTIONNAIRE_VALID_FOR = timedelta(days=7)


@dataclass(frozen=True)
class LinkClaims:
    organization_id: int
    message_id: int
    action: str
    issued_at: datetime | None = None


class _Signer(signing.TimestampSigner):
    """A TimestampSigner whose clock can be given (tests, and links issued for a known time)."""

    def __init__(self, *, now: datetime | None = None) -> None:
        super().__init__(salt=SALT)
        self._now = now

    def timestamp(self) -> str:
        if self._now is None:
            return super().timestamp()
        return signing.b62_encode(int(self._now.timestamp()))


def link_max_age() -> int:
    return int(settings.ENGAGEMENT_LINK_MAX_AGE)


def make_token(*, organization_id: int, message_id: int, action: str, now: datetime | None = None) -> str:
    if action not in ACTIONS:
        raise ValueError(f"Unknown link action {action!r}")
    return _Signer(now=now).sign_object([organization_id, message_id, action], compress=True)


def read_token(token: str, *, max_age: int | None = None, now: datetime | None = None) -> LinkClaims:
    """The token's claims, with the time it was issued.

    Raises signing.BadSignature (or its subclass SignatureExpired once `max_age` seconds, by
    default ENGAGEMENT_LINK_MAX_AGE, have passed since it was issued, as of `now`).
    """
    signer = _Signer()
    organization_id, message_id, action = signer.unsign_object(token)  # the signature, no age yet
    if action not in ACTIONS:
        raise signing.BadSignature("Unknown action")
    # Signed value: "<payload>:<timestamp>:<signature>"; the signature above covers the timestamp.
    issued_at = datetime.fromtimestamp(signing.b62_decode(token.rsplit(signer.sep, 2)[1]), tz=UTC)
    age = ((now or timezone.now()) - issued_at).total_seconds()
    limit = link_max_age() if max_age is None else max_age
    if age > limit:
        raise signing.SignatureExpired(f"Link age {age:.0f} > {limit} seconds")
    return LinkClaims(int(organization_id), int(message_id), str(action), issued_at)


def link_expires_at(claims: LinkClaims, *, starts_at: datetime | None = None) -> datetime:
    """When a link stops working: its maximum age, and for appointment actions the appointment's start."""
    assert claims.issued_at is not None, "claims read from a token carry the issue time"
    expires_at = claims.issued_at + timedelta(seconds=link_max_age())
    if claims.action in (*APPOINTMENT_ACTIONS, "slot") and starts_at is not None:
        expires_at = min(expires_at, starts_at)
    if claims.action == "survey":
        expires_at = min(expires_at, claims.issued_at + SURVEY_VALID_FOR)
    if claims.action == "questionnaire":
        expires_at = min(expires_at, claims.issued_at + QUESTIONNAIRE_VALID_FOR)
    return expires_at


def public_url(path: str) -> str:
    base = settings.PUBLIC_BASE_URL or "http://127.0.0.1:8000"
    return base.rstrip("/") + path


def link_for(*, organization_id: int, message_id: int, action: str) -> str:
    token = make_token(organization_id=organization_id, message_id=message_id, action=action)
    return public_url(reverse("engagement:patient_link", args=[token]))
