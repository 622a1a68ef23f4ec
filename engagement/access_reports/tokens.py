"""Signed, expiring access-report links: ids only (organization, request), TimestampSigner with its
own salt, so a token of another kind of patient link never opens one (engagement/links.py's pattern)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core import signing
from django.urls import reverse

from engagement.links import public_url

SALT = "engagement.access-report"
LINK_VALID_FOR = timedelta(days=7)


@dataclass(frozen=True)
class ReportClaims:
    organization_id: int
    request_id: int
    issued_at: datetime


class _Signer(signing.TimestampSigner):
    def __init__(self, *, now: datetime | None = None) -> None:
        super().__init__(salt=SALT)
        self._now = now

    def timestamp(self) -> str:
        if self._now is None:
            return super().timestamp()
        return signing.b62_encode(int(self._now.timestamp()))


def make_token(*, organization_id: int, request_id: int, now: datetime) -> str:
    return _Signer(now=now).sign_object([organization_id, request_id], compress=True)


def read_token(token: str, *, now: datetime) -> ReportClaims:
    """The claims of an untampered token. Raises signing.BadSignature for anything altered or not
    ours, signing.SignatureExpired (a subclass) once LINK_VALID_FOR has passed since it was issued."""
    signer = _Signer()
    try:
        organization_id, request_id = signer.unsign_object(token)
        issued_at = datetime.fromtimestamp(signing.b62_decode(token.rsplit(signer.sep, 2)[1]), tz=UTC)
        claims = ReportClaims(int(organization_id), int(request_id), issued_at)
    except (ValueError, TypeError, IndexError, OverflowError):
        raise signing.BadSignature("Malformed access-report token") from None
    if now - claims.issued_at > LINK_VALID_FOR:
        raise signing.SignatureExpired("Access-report link expired")
    return claims


def link_for(*, organization_id: int, request_id: int, now: datetime) -> str:
    token = make_token(organization_id=organization_id, request_id=request_id, now=now)
    return public_url(reverse("engagement:access_report_link", args=[token]))
