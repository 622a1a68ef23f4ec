"""The access log mechanism: one decorator for every view that shows PHI.

    @phi_view(AccessAction.VIEW)
    def patient_detail(request, pk): ...

The decorator gives the request a recorder; guarded fetches (`compliance.guards`) and list views
tell it what was shown, as (type, id) pairs; after a successful response it writes one AccessLog
row in the request's transaction. A refusal on a PHI route (403, or 404 for an id the organization
does not have) writes one `denied` row instead, with the ids asked for. Fetching PHI through a
guard outside a `@phi_view` raises, so a view cannot show PHI unlogged by forgetting the
decorator. `@phi_free` marks views that show none (a test checks every URL is one or the other).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse

from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import get_current_organization

View = Callable[..., HttpResponse]


def search_fingerprint(terms: dict[str, str]) -> str:
    """A keyed hash of what was searched (same key family as blind indexes, distinct domain)."""
    canonical = "\x1e".join(f"{k}\x1f{' '.join(str(v).casefold().split())}" for k, v in sorted(terms.items()))
    return hmac.new(settings.BLIND_INDEX_KEY.encode(), f"search\x1d{canonical}".encode(), hashlib.sha256).hexdigest()


def _asked_id(value: object) -> str:
    """An id as asked for, fit for the log: a number, or "?" for anything else (never the text sent)."""
    text = str(value)
    return text if re.fullmatch(r"-?\d{1,20}", text) else "?"


def _patient_field(model: type[models.Model]) -> models.ForeignKey | None:
    try:
        field = model._meta.get_field("patient")
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.ForeignKey) else None


class AccessRecorder:
    """What one request showed: (type, id) pairs in order, each once, and what was searched.

    `records` ("app.model:pk") is the record of what was shown. The older `object_type`/`object_ids`
    columns are still written, as a summary: the type of the first record shown and the ids of the
    records of that type only (so an appointment's page logs the appointment under its own type).
    """

    def __init__(self, action: str, view_name: str) -> None:
        self.action = action
        self.view_name = view_name
        self.records: list[str] = []
        self.search_terms: dict[str, str] = {}
        self.denied_logged = False

    def saw(self, objects: Iterable[models.Model]) -> None:
        """Record objects shown; a record of a patient (an appointment, a task) names its patient too,
        right after it: pages show whose record it is."""
        for obj in objects:
            self.add(obj._meta.label_lower, obj.pk)
            field = _patient_field(type(obj))
            if field is not None and getattr(obj, field.attname) is not None:
                related = field.related_model
                assert not isinstance(related, str)  # a resolved model class, never "self" here
                self.add(related._meta.label_lower, getattr(obj, field.attname))

    def add(self, label: str, pk: object) -> None:
        key = f"{label[:100]}:{_asked_id(pk)}"
        if key not in self.records:
            self.records.append(key)

    @property
    def object_type(self) -> str:
        return self.records[0].rpartition(":")[0] if self.records else ""

    @property
    def object_ids(self) -> list[str]:
        first = self.object_type
        return [key.rpartition(":")[2] for key in self.records if key.rpartition(":")[0] == first]

    def searched(self, **terms: str) -> None:
        self.search_terms.update({k: v for k, v in terms.items() if v not in (None, "")})

    def write(self, request: HttpRequest, action: str | None = None) -> AccessLog:
        user = request.user
        searched = self.search_terms and self.action != AccessAction.EXPORT  # an export says what it exported
        return AccessLog.objects.create(
            actor=user if user.is_authenticated else None,
            actor_label=user.get_username() if user.is_authenticated else "anonymous",
            action=action or (AccessAction.SEARCH if searched else self.action),
            view_name=self.view_name,
            object_type=self.object_type,
            object_ids=self.object_ids[:500],
            records=self.records[:500],
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
    """Log a refused attempt (403) at a record: the response commits, so the row stays."""
    record_denied_ids(request, [(obj._meta.label_lower, obj.pk)], view_name)


def record_denied_ids(request: HttpRequest, asked: Iterable[tuple[str, object]], view_name: str = "") -> None:
    """Log a refused attempt (403, or 404 for an id not in the organization) with the ids asked for.

    Written once per request: a view that refuses in a guard and again in its decorator logs one row.
    """
    recorder = getattr(request, "phi_access", None)
    if recorder is not None and recorder.denied_logged:
        return
    if get_current_organization() is None or not request.user.is_authenticated:
        return
    denied = AccessRecorder(AccessAction.DENIED, (recorder.view_name if recorder else "") or view_name)
    for label, pk in asked:
        denied.add(label, pk)
    denied.write(request, action=AccessAction.DENIED)
    if recorder is not None:
        recorder.denied_logged = True


def _view_name(request: HttpRequest, view: View) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name:
        return match.view_name
    return f"{view.__module__}.{view.__name__}"


def _denied(request: HttpRequest, recorder: AccessRecorder, kwargs: dict[str, Any]) -> None:
    """A PHI route refused (403 or 404): log it as denied with what was asked for.

    Guarded fetches name the records (`record_denied` or the pairs they saw before the refusal);
    failing that, the route's ids are logged under the view's name.
    """
    asked = [tuple(key.rsplit(":", 1)) for key in recorder.records]
    if not asked:
        asked = [(f"{recorder.view_name}.{name}", value) for name, value in kwargs.items()]
    record_denied_ids(request, asked)  # type: ignore[arg-type]


# The records a POST that redirected changed, and where it sent the browser (post/redirect/get).
_AFTER_CHANGE = "phi_access_after_change"


def _shown_again(request: HttpRequest, recorder: AccessRecorder) -> bool:
    """Whether this GET is the page a logged change redirected to, showing nothing it did not log:
    one action (a staff reply, a task added) writes one row, not one per request."""
    session = getattr(request, "session", None)
    if session is None or _AFTER_CHANGE not in session:
        return False
    after = session.pop(_AFTER_CHANGE)
    return (
        request.method == "GET"
        and after.get("url") == request.get_full_path()
        and set(recorder.records) <= set(after.get("records", []))
        and not recorder.search_terms
    )


def _remember_change(request: HttpRequest, recorder: AccessRecorder, response: HttpResponse) -> None:
    session = getattr(request, "session", None)
    url = response.get("Location", "")
    if session is not None and 300 <= response.status_code < 400 and url.startswith("/"):
        session[_AFTER_CHANGE] = {"url": url, "records": recorder.records[:500]}


def phi_view(action: str) -> Callable[[View], View]:
    """Access-log a view that shows PHI (detail, list, search, export).

    A POST to a record's view (a reply, a task, a status) is logged as a change of the records it
    touched; the page it redirects to is not logged again unless it shows more."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            recorder = AccessRecorder(action, _view_name(request, view))
            request.phi_access = recorder  # type: ignore[attr-defined]
            try:
                response = view(request, *args, **kwargs)
            except (PermissionDenied, Http404):
                _denied(request, recorder, kwargs)
                raise
            if response.status_code in (403, 404):
                _denied(request, recorder, kwargs)
            changed = (
                request.method == "POST"
                and recorder.action == AccessAction.VIEW
                and bool(recorder.records)
                and not recorder.search_terms
            )
            if changed:
                recorder.action = AccessAction.CHANGE
            shown = recorder.records or recorder.search_terms or recorder.action != AccessAction.VIEW
            if response.status_code < 400 and request.user.is_authenticated and shown:
                if not _shown_again(request, recorder):
                    recorder.write(request)
                if changed:
                    _remember_change(request, recorder, response)
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
        if response.status_code < 400 and recorder.records:
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
