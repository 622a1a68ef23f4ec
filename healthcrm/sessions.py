"""A user's sessions, listed and ended (issue 13 item 6).

Sessions live in Redis (`SESSION_ENGINE` cache), which cannot list the keys of one user: each
sign-in writes a `UserSession` row (`user_logged_in`), each request touches it at most once a minute
(`SessionTimeoutMiddleware` calls `user_session_touch`), sign-out deletes it. Ending a session
deletes its key from the session store (the next request is anonymous) and its row, and writes an
audit entry on the user (`event = session.ended`, in the current organization's chained trail).
"""

from __future__ import annotations

import datetime as dt
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.backends.base import SessionBase
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from healthcrm.models import UserSession
from healthcrm.tenancy import SESSION_KEY, get_current_organization

TOUCH_EVERY = 60  # seconds: a request writes the row at most this often
_TOUCHED = "_healthcrm_session_touched"
USER_AGENT_MAX = 200


def _store(session_key: str | None = None) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    return engine.SessionStore(session_key)


def session_digest(session_key: str) -> str:
    return salted_hmac("healthcrm.sessions.UserSession", session_key, algorithm="sha256").hexdigest()


def user_agent_summary(user_agent: str) -> str:
    """A short "browser on system" label from the User-Agent header (no version numbers)."""
    ua = user_agent or ""
    browser = next(
        (
            name
            for token, name in (
                ("Edg/", "Edge"),
                ("OPR/", "Opera"),
                ("Firefox/", "Firefox"),
                ("Chrome/", "Chrome"),
                ("Chromium/", "Chromium"),
                ("Safari/", "Safari"),
            )
            if token in ua
        ),
        "Unknown browser",
    )
    system = next(
        (
            name
            for token, name in (
                ("iPhone", "iOS"),
                ("iPad", "iPadOS"),
                ("Android", "Android"),
                ("Windows", "Windows"),
                ("Mac OS X", "macOS"),
                ("Linux", "Linux"),
            )
            if token in ua
        ),
        "unknown system",
    )
    return f"{browser} on {system}"[:USER_AGENT_MAX]


def _client_ip(request: HttpRequest) -> str | None:
    return getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR") or None


def user_session_record(request: HttpRequest, user: Any) -> UserSession | None:
    """The row of the request's session (created at sign-in, or for a session signed in before
    the index existed), its last-seen time now."""
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None)
    if session is None or not key or not getattr(user, "pk", None):
        return None
    now = timezone.now()
    row, created = UserSession.objects.get_or_create(
        key_digest=session_digest(key),
        defaults={
            "user_id": user.pk,
            "session_key": key,
            "user_agent": user_agent_summary(request.headers.get("User-Agent", "")),
            "ip": _client_ip(request),
            "started_at": now,
            "last_seen_at": now,
        },
    )
    if not created:
        UserSession.objects.filter(pk=row.pk).update(last_seen_at=now, ip=_client_ip(request))
    session[_TOUCHED] = int(now.timestamp())
    return row


def user_session_touch(request: HttpRequest, now: int) -> None:
    """Called on each signed-in request: writes the row's last-seen time at most once a minute."""
    touched = request.session.get(_TOUCHED)
    if touched is not None and now - int(touched) < TOUCH_EVERY:
        return
    user_session_record(request, request.user)


def _works_in(row: UserSession, organization_id: int | None) -> bool:
    """Whether the session works in the organization (or in none yet); always without one."""
    if organization_id is None:
        return True
    return _store(row.session_key).load().get(SESSION_KEY) in (None, organization_id)


def user_session_list(user_ids: list[int], organization_id: int | None = None) -> list[UserSession]:
    """The live sessions of these users (working in `organization_id` when given), most recent
    first; rows whose session is gone from the store (expired, flushed) are dropped on the way."""
    idle = dt.timedelta(seconds=settings.SESSION_IDLE_TIMEOUT)
    rows = list(UserSession.objects.filter(user_id__in=user_ids).select_related("user"))
    store = _store()
    gone = [r.pk for r in rows if r.last_seen_at < timezone.now() - idle or not store.exists(r.session_key)]
    if gone:
        UserSession.objects.filter(pk__in=gone).delete()
    return [r for r in rows if r.pk not in gone and _works_in(r, organization_id)]


def _audit_end(row: UserSession, reason: str) -> None:
    from auditlog.models import LogEntry

    organization = get_current_organization()
    LogEntry.objects.log_create(
        row.user,
        force_log=True,
        action=LogEntry.Action.UPDATE,
        changes={"session": [f"#{row.pk}", None]},
        additional_data={
            "organization_id": organization.pk if organization is not None else None,
            "event": "session.ended",
            "reason": reason,
        },
    )


def user_session_end(*, row: UserSession, reason: str = "ended") -> None:
    """End one session now: its key leaves the store (the browser's next request is signed out),
    its row goes and the audit entry is written in the caller's transaction.

    Not deferred to the commit, unlike other side effects: signing someone out is the safe side
    of a failure (a deactivation that rolls back leaves a user who signs in again), while a key
    left in the store after a committed deactivation would be the unsafe one."""
    _store(row.session_key).delete(row.session_key)
    UserSession.objects.filter(pk=row.pk).delete()
    _audit_end(row, reason)


def user_sessions_end(*, user_id: int, organization_id: int | None = None, reason: str = "ended") -> int:
    """End every session of a user (with `organization_id`: those working in that organization,
    or in none yet). Returns how many ended."""
    ended = 0
    for row in list(UserSession.objects.filter(user_id=user_id)):
        if not _works_in(row, organization_id):
            continue
        user_session_end(row=row, reason=reason)
        ended += 1
    return ended


@receiver(user_logged_in, dispatch_uid="healthcrm.sessions.record")
def _signed_in(sender: object, request: HttpRequest | None, user: Any, **kwargs: object) -> None:
    if request is not None:
        user_session_record(request, user)


@receiver(user_logged_out, dispatch_uid="healthcrm.sessions.forget")
def _signed_out(sender: object, request: HttpRequest | None, user: Any, **kwargs: object) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        UserSession.objects.filter(key_digest=session_digest(key)).delete()


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="healthcrm.sessions.user_disabled")
def _user_disabled(sender: object, instance: Any, created: bool = False, **kwargs: object) -> None:
    """An account disabled (is_active off) loses every session at once, in every organization."""
    if not created and not instance.is_active:
        user_sessions_end(user_id=instance.pk, reason="account_disabled")
