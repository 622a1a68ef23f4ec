"""No page we render may be kept by a browser cache or a proxy: `Cache-Control: no-store`."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils.cache import get_max_age

from healthcrm.tenancy import organization_context
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _directives(response) -> set[str]:
    return {part.strip() for part in response.get("Cache-Control", "").split(",") if part.strip()}


def test_every_authenticated_page_is_no_store(client_for, nurse_user, org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
    client = client_for(nurse_user)
    for url in (
        reverse("dashboard"),
        reverse("patients:list"),
        reverse("patients:detail", args=[patient.pk]),
        reverse("patients:my_tasks"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" in _directives(response), url
        assert get_max_age(response) == 0, url
    partial = client.get(reverse("patients:list"), HTTP_HX_REQUEST="true")
    assert "no-store" in _directives(partial)


def test_redirects_errors_and_signed_out_pages_are_no_store_too(client_for, nurse_user, other_org_user, org_a) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
    assert "no-store" in _directives(
        client_for(other_org_user).get(reverse("patients:detail", args=[patient.pk]))
    )  # 404
    assert "no-store" in _directives(client_for(nurse_user).post(reverse("logout")))
    assert "no-store" in _directives(client_for(nurse_user).get(reverse("login")))


def test_static_files_stay_cacheable(client) -> None:
    response = client.get("/static/favicon.svg")
    assert response.status_code == 200
    assert "no-store" not in _directives(response)
