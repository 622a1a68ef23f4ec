"""The SMS provider as the delivery engine sees it: a backend chosen by ENGAGEMENT_SMS_BACKEND (a
dotted path; integrations/twilio/backend.py is Twilio's), and the error every send raises.

A backend sends without the database (it runs on the sender threads) and reports in engagement's
vocabulary: a DeliveryError says whether trying again can help (`permanent`), whether the request
may have reached the provider (`unknown`) and whether the recipient unsubscribed at the provider
(`opted_out`). Engagement never imports a provider: the setting names it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string


class DeliveryError(Exception):
    """A failed send. The message is safe to store: it never holds the address or the text."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str = "",
        unknown: bool = False,
        opted_out: bool = False,
        reached: bool = True,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        # The request may have reached the provider (a timeout): settle by asking it, not by resending.
        self.unknown = unknown
        # The provider refuses this recipient because they unsubscribed there: record the opt-out.
        self.opted_out = opted_out
        # The provider answered (an error status): the try counts towards max_attempts. A network
        # failure or a timeout did not get an answer: retried within the message's useful life.
        self.reached = reached and not unknown


@dataclass(frozen=True)
class SmsAccount:
    """An organization's provider account, read from its channel settings before the send."""

    organization_slug: str
    account_sid: str
    auth_token: str = field(repr=False)  # a secret: never in a log line or a traceback's locals
    from_number: str = ""
    messaging_service_sid: str = ""

    @classmethod
    def of(cls, organization: Any, settings_: Any) -> SmsAccount:
        return cls(
            organization_slug=organization.slug,
            account_sid=settings_.twilio_account_sid,
            auth_token=settings_.twilio_auth_token,
            from_number=settings_.sms_from_number,
            messaging_service_sid=settings_.messaging_service_sid,
        )

    @property
    def is_complete(self) -> bool:
        """Credentials and a sender: what a provider needs before any message can go."""
        return bool(self.account_sid and self.auth_token and (self.from_number or self.messaging_service_sid))


@dataclass(frozen=True)
class SmsSent:
    provider_id: str
    segments: int | None = None


class SmsBackend:
    """The interface: `send` one message, `find_sent` to settle a send whose outcome is unknown."""

    # A provider needs the organization's account (SmsAccount.is_complete) before it can send:
    # messages are held, not failed, while an organization has none.
    needs_account = False

    def send(self, *, account: SmsAccount, to: str, body: str, message_id: int) -> SmsSent:
        """Send one SMS; raises DeliveryError."""
        raise NotImplementedError

    def find_sent(self, *, account: SmsAccount, to: str, body: str, since: datetime) -> str:
        """The provider id of a message to `to` with this text created since `since`, '' when the
        provider holds none (or cannot tell). Raises DeliveryError when it cannot be asked now."""
        return ""


class SinkBackend(SmsBackend):
    """Development and tests without a provider: every message is "sent" with a fake id."""

    def send(self, *, account: SmsAccount, to: str, body: str, message_id: int) -> SmsSent:
        return SmsSent(provider_id=f"SINK{message_id:012d}")


@cache
def _backend(path: str) -> SmsBackend:
    backend = import_string(path)()
    if not isinstance(backend, SmsBackend):
        raise TypeError(f"ENGAGEMENT_SMS_BACKEND {path!r} is not an engagement SmsBackend.")
    return backend


def sms_backend() -> SmsBackend:
    """The configured backend (one instance per dotted path). A short name (`twilio`,
    `outbox_sink`) is looked up in ENGAGEMENT_SMS_BACKENDS, as the SMS_BACKEND variable is."""
    name = settings.ENGAGEMENT_SMS_BACKEND
    return _backend(settings.ENGAGEMENT_SMS_BACKENDS.get(name, name))
