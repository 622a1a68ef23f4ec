"""The request staff views receive, typed; and the one way a view answers htmx or a whole page.

`TenantRequest` is for type checkers only: Django builds plain `HttpRequest`s and the middleware
(tenancy, django-htmx, the access log's decorator) adds these attributes. Annotating a view's
`request: TenantRequest` says what it may rely on behind `staff_view`, without `# type: ignore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from django import forms
from django.conf import settings
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.middleware import HtmxDetails

from healthcrm.models import Membership, Organization


class AccessRecording(Protocol):
    """What a view may tell the access log (compliance.access.AccessRecorder, seen from the floor)."""

    def saw(self, objects: Iterable[models.Model]) -> None: ...

    def searched(self, **terms: str) -> None: ...


class TenantRequest(HttpRequest):
    """A signed-in user's request inside one organization (what `staff_view` guarantees)."""

    user: User  # signed in: never AnonymousUser behind login_required
    organization: Organization
    membership: Membership | None  # None for a platform administrator entering an organization
    memberships: list[Membership]
    phi_access: AccessRecording
    htmx: HtmxDetails
    client_ip: str | None


def render_partial_or_page(
    request: HttpRequest,
    page_template: str,
    partial_template: str,
    context: dict[str, Any] | None = None,
    status: int | None = None,
) -> HttpResponse:
    """htmx requests get the partial (the part of the page they swap), others the whole page."""
    htmx = getattr(request, "htmx", None)
    template = partial_template if htmx else page_template
    return render(request, template, context, status=status)


def form_add_service_errors(
    form: forms.BaseForm, exc: ValidationError, *, field_map: Mapping[str, str] | None = None
) -> None:
    """Put a service's ValidationError on the form that fed it: each message on its field when the
    form has one (a model field may be renamed through `field_map`, e.g. `starts_at` -> the form's
    `start_time`), the rest at the top of the form."""
    errors: dict[str | None, list[str]] = {None: list(exc.messages)}
    if hasattr(exc, "error_dict"):
        errors = {name: list(messages) for name, messages in exc.message_dict.items()}
    for name, messages in errors.items():
        target = (field_map or {}).get(name or "", name)
        for message in messages:
            form.add_error(target if target in form.fields else None, message)


def public_base_url(request: HttpRequest) -> str:
    """The site's address for links sent out of it (emails, invitations): PUBLIC_BASE_URL, else the
    address this request came to."""
    return settings.PUBLIC_BASE_URL or f"{request.scheme}://{request.get_host()}"
