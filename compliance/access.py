"""The access log mechanism: one decorator for every view that shows PHI.

    @phi_view(AccessAction.VIEW)
    def patient_detail(request, pk): ...

The decorator gives the request a recorder; guarded fetches (`compliance.guards`) and list views
tell it what was shown; after a successful response it writes one AccessLog row in the request's
transaction. Fetching PHI through a guard outside a `@phi_view` raises, so a view cannot show
PHI unlogged by forgetting the decorator. `@phi_free` marks views that show none (a test checks
every URL is one or the other).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.http import HttpRequest, HttpResponse

from compliance.models import AccessAction, AccessLog

View = Callable[..., HttpResponse]


def search_fingerprint(terms: dict[str, str]) -> str:
    """A keyed hash of what was searched (same key family as blind indexes, distinct domain)."""
    canonical = "\x1e".join(f"{k}\x1f{' '.join(str(v).casefold().split())}" for k, v in sorted(terms.items()))
    return hmac.new(settings.BLIND_INDEX_KEY.encode(), f"search\x1d{canonical}".encode(), hashlib.sha256).hexdigest()


class AccessRecorder:
    def __init__(self, action: str, view_name: str) -> None:
        self.action = action
        self.view_name = view_name
        self.object_type = ""
        self.object_ids: list[str] = []
        self.search_terms: dict[str, str] = {}

    def saw(self, objects: Iterable[models.Model]) -> None:
        for obj in objects:
            self.object_type = obj._meta.label_lower
            self.object_ids.append(str(obj.pk))

    def searched(self, **terms: str) -> None:
        self.search_terms.update({k: v for k, v in terms.items() if v not in (None, "")})

    def write(self, request: HttpRequest, action: str | None = None) -> AccessLog:
        user = request.user
        return AccessLog.objects.create(
            actor=user if user.is_authenticated else None,
            actor_label=user.get_username() if user.is_authenticated else "anonymous",
            action=action or (AccessAction.SEARCH if self.search_terms else self.action),
            view_name=self.view_name,
            object_type=self.object_type,
            object_ids=self.object_ids[:500],
            search_fields=sorted(self.search_terms),
            search_fingerprint=search_fingerprint(self.search_terms) if self.search_terms else "",
            ip_address=getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR"),
        )


def access_recorder(request: HttpRequest) -> AccessRecorder:
    recorder = getattr(request, "phi_access", None)
    if recorder is None:
        raise ImproperlyConfigured(
            "PHI was fetched in a view without @phi_view: every view that shows PHI must be access-logged."
        )
    return recorder


def record_denied(request: HttpRequest, obj: models.Model, view_name: str = "") -> None:
    """Log a refused attempt (403): the response commits, so the row stays."""
    recorder = getattr(request, "phi_access", None) or AccessRecorder(AccessAction.DENIED, view_name)
    denied = AccessRecorder(AccessAction.DENIED, recorder.view_name or view_name)
    denied.saw([obj])
    denied.write(request, action=AccessAction.DENIED)


def _view_name(request: HttpRequest, view: View) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name:
        return match.view_name
    return f"{view.__module__}.{view.__name__}"


def phi_view(action: str) -> Callable[[View], View]:
    """Access-log a view that shows PHI (detail, list, search, export)."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            recorder = AccessRecorder(action, _view_name(request, view))
            request.phi_access = recorder  # type: ignore[attr-defined]
            response = view(request, *args, **kwargs)
            shown = recorder.object_ids or recorder.search_terms or action != AccessAction.VIEW
            if response.status_code < 400 and request.user.is_authenticated and shown:
                recorder.write(request)
            return response

        wrapped.phi_access_action = action  # type: ignore[attr-defined]
        return wrapped

    return decorator


def phi_free(view: View) -> View:
    """Declare that a view shows no PHI (so it needs no access log)."""
    view.phi_free = True  # type: ignore[attr-defined]
    return view


class PHIAdminMixin:
    """Access-log Django admin pages of PHI models (change list and change form)."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        recorder = AccessRecorder(AccessAction.LIST, f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")  # type: ignore[attr-defined]
        request.phi_access = recorder  # type: ignore[attr-defined]
        response = super().changelist_view(request, extra_context)  # type: ignore[misc]
        changelist = getattr(response, "context_data", {}).get("cl") if response.status_code < 400 else None
        if changelist is not None:
            recorder.saw(changelist.result_list)
            if changelist.query:
                recorder.searched(q=changelist.query)
            recorder.write(request)
        return response

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        recorder = AccessRecorder(AccessAction.VIEW, f"admin:{self.opts.app_label}_{self.opts.model_name}_change")  # type: ignore[attr-defined]
        request.phi_access = recorder  # type: ignore[attr-defined]
        response = super().change_view(request, object_id, form_url, extra_context)  # type: ignore[misc]
        if response.status_code < 400 and recorder.object_ids:
            recorder.write(request)
        return response

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        recorder = getattr(request, "phi_access", None)
        if obj is not None and recorder is not None:
            recorder.saw([obj])
        return obj

    def get_search_results(self, request: HttpRequest, queryset: Any, search_term: str) -> Any:
        # Encrypted columns cannot be searched with LIKE; subclasses search through blind indexes.
        return queryset, False
