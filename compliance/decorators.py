"""`staff_view`: the one decorator a staff page wears.

    @staff_view(access=AccessAction.LIST, perm="patients.view_patient")
    def patient_list_view(request: TenantRequest) -> HttpResponse: ...

    @staff_view(access=PHI_FREE, perm="engagement.view_rule")
    def rule_list_view(request: TenantRequest) -> HttpResponse: ...

It stands for the stack every staff view used to write by hand, in the same order:
`login_required` (anonymous users go to the sign-in page), `organization_required` (users without
an organization see why, 403), then the access log (`phi_view(access)`, or the explicit `phi_free`
declaration: `access` has no default, so a view cannot forget to say which), then the permission
check (403), then the view. The permission is checked inside the access log's wrapper, as the first
line of the view used to, so whatever the access log does with a refusal applies to it too.

It lives in compliance, not the core, because it composes the access log; feature apps import it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, Final

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from compliance.access import phi_free, phi_view
from compliance.guards import GuardResponse, require_perm
from compliance.models import AccessAction
from healthcrm.decorators import organization_required

View = Callable[..., HttpResponse]
PermCheck = Callable[[Any], None]

PHI_FREE: Final = "phi-free"
"""`access=PHI_FREE`: the view shows no PHI (so it needs no access log), said explicitly."""


def _permission_checked(view: View, perm: str | PermCheck) -> View:
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if isinstance(perm, str):
            require_perm(request, perm)
        else:
            perm(request)
        return view(request, *args, **kwargs)

    return checked


def _guard_answers(view: View) -> View:
    """A guarded fetch that answers with its own page (GuardResponse) replaces the view's answer."""

    @wraps(view)
    def answered(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except GuardResponse as answer:
            return answer.response

    return answered


def staff_view(
    *, access: str, perm: str | PermCheck | None = None, organization: bool = True
) -> Callable[[View], View]:
    """Login, organization, access log (or PHI-free), permission: one line above a staff view.

    `access` is an `AccessAction` (the view shows PHI and is access-logged) or `PHI_FREE`.
    `perm` is a permission name (`request.user.has_perm`, 403 without it) or a callable that takes
    the request and raises `PermissionDenied`. `organization=False` is for the few pages a user
    without an organization may open (switching organization).
    """

    if access != PHI_FREE and access not in AccessAction.values:
        raise ValueError(f"staff_view(access=...) takes an AccessAction or PHI_FREE, not {access!r}")

    def decorator(view: View) -> View:
        body = view if perm is None else _permission_checked(view, perm)
        logged = phi_free(body) if access == PHI_FREE else _guard_answers(phi_view(access)(body))
        if organization:
            logged = organization_required(logged)
        wrapped = login_required(logged)
        wrapped.staff_view = True  # type: ignore[attr-defined]
        return wrapped

    return decorator
