"""The guarded fetch every view uses: 404 across organizations, 403 without the permission."""

from __future__ import annotations

from typing import TypeVar

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse

from compliance.access import access_recorder, record_denied, record_denied_ids
from healthcrm.crypto import is_phi_model

M = TypeVar("M", bound=models.Model)


def get_object_for_user(request: HttpRequest, queryset: models.QuerySet[M], pk: object, perm: str) -> M:
    """Fetch one object of the current organization that the user may `perm`.

    The queryset comes from a tenant manager, so another organization's id is simply not found
    (404, the same answer as for an id that never existed; logged as denied, with the id asked
    for). A role without `perm` and no django-guardian object permission gets 403, and the
    attempt is access-logged. PHI objects are recorded on the view's access log.
    """
    try:
        obj = queryset.get(pk=pk)
    except (ObjectDoesNotExist, ValueError, TypeError):
        if is_phi_model(queryset.model):
            # Another organization's id looks like one that never existed: both are logged as denied.
            record_denied_ids(request, [(queryset.model._meta.label_lower, pk)])
        raise Http404(f"No {queryset.model._meta.verbose_name} matches the given id.") from None
    user = request.user
    if not (user.has_perm(perm) or user.has_perm(perm, obj)):
        if is_phi_model(type(obj)):
            record_denied(request, obj)
        raise PermissionDenied
    if is_phi_model(type(obj)):
        access_recorder(request).saw([obj])
    return obj


class GuardResponse(Exception):  # noqa: N818 (not an error: the guard answers with another page)
    """Raised by a guarded fetch that answers with a page of its own instead of the record (the
    break-the-glass form): `staff_view` returns `response`. Raise it after logging the refusal."""

    def __init__(self, response: HttpResponse) -> None:
        super().__init__("The guard answered with its own page.")
        self.response = response


def require_perm(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied
