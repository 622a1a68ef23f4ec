"""staff_view keeps every guarantee of the stack it replaced, in the same order."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.test import RequestFactory

from compliance.decorators import PHI_FREE, staff_view
from compliance.models import AccessAction, AccessLog


def _request(user: Any, organization: Any = None) -> Any:
    request = RequestFactory().get("/somewhere/")
    request.user = user
    request.organization = organization
    request.membership = None
    request.memberships = []
    return request


def _ok(request: Any) -> HttpResponse:
    return HttpResponse("ok")


def test_access_must_be_said_and_be_an_access_action() -> None:
    with pytest.raises(TypeError):
        staff_view()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="AccessAction or PHI_FREE"):
        staff_view(access="view-ish")


def test_the_access_log_declaration_reaches_the_url_conf() -> None:
    def shows_phi(request: Any) -> HttpResponse:
        return HttpResponse()

    def shows_none(request: Any) -> HttpResponse:
        return HttpResponse()

    logged = staff_view(access=AccessAction.LIST, perm="patients.view_patient")(shows_phi)
    free = staff_view(access=PHI_FREE)(shows_none)
    assert logged.phi_access_action == AccessAction.LIST  # type: ignore[attr-defined]
    assert not getattr(logged, "phi_free", False)
    assert free.phi_free is True  # type: ignore[attr-defined]
    assert not hasattr(free, "phi_access_action")


def test_anonymous_users_go_to_sign_in_and_users_without_an_organization_see_why(nurse_user) -> None:
    view = staff_view(access=AccessAction.VIEW)(_ok)
    response = view(_request(AnonymousUser()))
    assert response.status_code == 302 and "/login" in response["Location"]
    response = view(_request(nurse_user, organization=None))
    assert response.status_code == 403 and b"member of any organization" in response.content
    switch = staff_view(access=PHI_FREE, organization=False)(_ok)
    assert switch(_request(nurse_user, organization=None)).status_code == 200


def test_the_permission_is_checked_inside_the_access_log_after_login_and_organization(analyst_user, org_a) -> None:
    seen: list[bool] = []

    def check(request: Any) -> None:
        seen.append(hasattr(request, "phi_access"))  # the access log's wrapper already runs
        raise PermissionDenied

    with pytest.raises(PermissionDenied):
        staff_view(access=AccessAction.LIST, perm=check)(_ok)(_request(analyst_user, organization=org_a))
    assert seen == [True]
    # No organization: refused before the permission check runs.
    assert staff_view(access=AccessAction.LIST, perm=check)(_ok)(_request(analyst_user)).status_code == 403
    assert seen == [True]
    with pytest.raises(PermissionDenied):
        staff_view(access=PHI_FREE, perm="patients.view_patient")(_ok)(_request(analyst_user, organization=org_a))


def test_a_permitted_list_is_access_logged(nurse_user, org_a) -> None:
    view = staff_view(access=AccessAction.EXPORT, perm="patients.view_patient")(_ok)
    from healthcrm.tenancy import organization_context

    with organization_context(org_a):
        assert view(_request(nurse_user, organization=org_a)).status_code == 200
        assert AccessLog.objects.filter(actor=nurse_user, action=AccessAction.EXPORT).count() == 1


# Views that are not staff pages: signed patient links, webhooks, machine endpoints, health check,
# and the second-factor pages (signed in, but before an organization is chosen; own decorators).
NOT_STAFF_PAGES = {
    "engagement.views.patient_link_view",
    "staff.views.mfa_verify",
    "staff.views.mfa_setup",
    "staff.views.mfa_enrolment_send",
    "staff.views.mfa_enrol",
    "staff.views.reauthenticate",  # both factors again: a second-factor page too (staff/reauth.py)
    "staff.views.healthz",
    "integrations.fhir.views.connection_jwks_view",  # a public key set the EHR fetches, no sign-in
}
STAFF_MODULES = ("patients.", "engagement.views", "compliance.views", "integrations.fhir.views", "staff.views")


def test_every_staff_page_is_a_staff_view() -> None:
    from tests.test_audit import _all_views

    missing = [
        route
        for route, view in _all_views()
        if view.__module__.startswith(STAFF_MODULES)
        and f"{view.__module__}.{getattr(view, '__name__', '')}" not in NOT_STAFF_PAGES
        and not getattr(view, "staff_view", False)
    ]
    assert missing == [], f"staff pages not written with @staff_view: {missing}"
