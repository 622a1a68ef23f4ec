"""Twilio SMS through the official client, pointed at TWILIO_API_URL (a local fake in tests).

Errors say whether trying again can help (`SmsError.permanent`): an invalid number or an opted-out
recipient never will; a timeout, a 429 or a 5xx may.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import requests
from django.conf import settings
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

# The library logs requests (with their form data: the message text) at INFO: keep it out of logs.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

# Error codes after which retrying cannot help.
# https://www.twilio.com/docs/api/errors: 21211 invalid To, 21610 unsubscribed recipient,
# 21614 not a mobile number, 21408 region not enabled, 21606/21612 From cannot send to To.
PERMANENT_CODES = frozenset({21211, 21610, 21614, 21408, 21606, 21612, 21217, 21219})
OPTED_OUT_CODE = 21610


class SmsError(Exception):
    """A failed send. The message is safe to store: it never holds the number or the text."""

    def __init__(self, message: str, *, permanent: bool, code: str = "") -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code


class RewritingHttpClient(TwilioHttpClient):
    """Sends every REST call to `base_url`'s scheme and host (path and query kept)."""

    def __init__(self, base_url: str, **kwargs: object) -> None:
        super().__init__(**kwargs)
        target = urlsplit(base_url)
        self._scheme, self._netloc = target.scheme, target.netloc

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> Response:
        parts = urlsplit(url)
        url = urlunsplit((self._scheme, self._netloc, parts.path, parts.query, parts.fragment))
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class SentMessage:
    sid: str
    status: str
    segments: int | None = None


# How many of a number's newest messages reconciliation reads (a patient gets a few a week).
RECONCILE_LIST_LIMIT = 100


@dataclass(frozen=True)
class ProviderMessage:
    sid: str
    to: str
    body: str
    date_created: datetime | None


# One HTTP session (keep-alive pool) per thread and credentials: building a client per message
# would open a connection per message.
_local = threading.local()


def _client(account_sid: str, auth_token: str) -> Client:
    cache = getattr(_local, "clients", None)
    if cache is None:
        cache = _local.clients = {}
    key = (account_sid, auth_token, settings.TWILIO_API_URL)
    client = cache.get(key)
    if client is None:
        http = RewritingHttpClient(settings.TWILIO_API_URL, timeout=settings.TWILIO_TIMEOUT)
        client = cache[key] = Client(account_sid, auth_token, http_client=http)
    return client


def send_sms(
    *,
    account_sid: str,
    auth_token: str,
    to: str,
    body: str,
    from_number: str = "",
    messaging_service_sid: str = "",
    status_callback: str = "",
) -> SentMessage:
    """Send one SMS; raises SmsError (permanent or not)."""
    if not account_sid or not auth_token or not (from_number or messaging_service_sid):
        raise SmsError("Twilio is not configured for this organization.", permanent=True, code="not_configured")
    kwargs: dict[str, str] = {"to": to, "body": body}
    if messaging_service_sid:
        kwargs["messaging_service_sid"] = messaging_service_sid
    else:
        kwargs["from_"] = from_number
    if status_callback:
        kwargs["status_callback"] = status_callback
    try:
        message = _client(account_sid, auth_token).messages.create(**kwargs)
    except TwilioRestException as exc:
        transient = exc.status == 429 or exc.status >= 500
        code = str(exc.code or exc.status)
        permanent = not transient or (exc.code in PERMANENT_CODES)
        raise SmsError(f"Twilio answered {exc.status} (error {code}).", permanent=permanent, code=code) from None
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise SmsError(f"Twilio unreachable: {type(exc).__name__}.", permanent=False, code="network") from None
    except TwilioException as exc:
        raise SmsError(f"Twilio client error: {type(exc).__name__}.", permanent=False, code="client") from None
    segments = int(message.num_segments) if getattr(message, "num_segments", None) else None
    return SentMessage(sid=message.sid or "", status=message.status or "queued", segments=segments)


def recent_messages(*, account_sid: str, auth_token: str, to: str, since: datetime) -> list[ProviderMessage]:
    """Messages the provider holds for `to` created since `since` (to settle an unknown outcome).

    Twilio filters only by DateSent, which a message still queued does not have: filtering on it
    would miss exactly the message whose outcome is unknown, and send it again. So the newest
    messages to `to` are listed unfiltered and compared by DateCreated here.
    """
    try:
        listed = _client(account_sid, auth_token).messages.list(to=to, limit=RECONCILE_LIST_LIMIT, page_size=50)
    except TwilioRestException as exc:
        raise SmsError(f"Twilio answered {exc.status}.", permanent=False, code=str(exc.code or exc.status)) from None
    except (requests.Timeout, requests.ConnectionError) as exc:
        raise SmsError(f"Twilio unreachable: {type(exc).__name__}.", permanent=False, code="network") from None
    found = [ProviderMessage(m.sid or "", m.to or "", m.body or "", m.date_created) for m in listed]
    return [m for m in found if m.date_created is None or m.date_created >= since]
