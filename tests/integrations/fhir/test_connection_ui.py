"""EHR connections in the staff UI: clinic administrators add and edit them (types in dependency
order, write-only secrets, validated SMART settings, a deliberate base URL move), generate the
SMART key pair, and the EHR fetches its public JWKS at a stable URL and accepts our assertions."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from healthcrm.tenancy import organization_context
from integrations.fhir import services
from integrations.fhir.client import FhirClientError
from integrations.models import FhirConnection
from tests.integrations.fhir.fake_ehr import FakeEhr

pytestmark = pytest.mark.django_db

FORM = {
    "name": "County EHR",
    "base_url": "https://EHR.example:443/fhir/R4/",
    "export_mode": "search",
    "export_group_id": "",
    "resource_types": ["Observation", "Patient", "Encounter"],
    "auth_type": "none",
    "bearer_token": "",
    "client_id": "",
    "token_url": "",
    "scope": "system/*.read",
    "interval_minutes": "60",
    "request_timeout_seconds": "30",
    "pull_deadline_minutes": "20",
    "is_active": "on",
}


def _saved(org: Any) -> FhirConnection:
    with organization_context(org):
        return FhirConnection.objects.get()


def test_an_admin_adds_a_connection_pulled_in_dependency_order(org_a, admin_user, client_for) -> None:
    client = client_for(admin_user)
    page = client.get(reverse("integrations:fhir_connection_create"))
    assert page.status_code == 200 and b"people and places first" in page.content
    response = client.post(reverse("integrations:fhir_connection_create"), FORM)
    connection = _saved(org_a)
    assert response.status_code == 302 and response["Location"] == reverse(
        "integrations:fhir_connection", args=[connection.pk]
    )
    # Whatever order was ticked, a pull asks for who first, then encounters, then what refers to them.
    assert connection.resource_types == ["Patient", "Encounter", "Observation"]
    assert connection.base_url == connection.source_system == "https://ehr.example/fhir/R4"
    detail = client.get(response["Location"])
    assert b"Patient, Encounter, Observation" in detail.content and b"Generate a key" in detail.content


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"auth_type": "smart"}, "client_id", "needs the EHR's client id"),
        ({"auth_type": "smart", "client_id": "crm"}, "token_url", "needs the EHR's token URL"),
        (
            {"auth_type": "smart", "client_id": "crm", "token_url": "http://auth.example/token"},
            "token_url",
            "must use https://",
        ),
        ({"scope": "patient/*.read launch"}, "scope", "Not a SMART system scope: patient/*.read, launch"),
        ({"resource_types": []}, "resource_types", "Choose at least one resource type"),
        ({"auth_type": "bearer"}, "bearer_token", "needs a token"),
        ({"resource_types": ["Patient", "Claim"]}, "resource_types", "Select a valid choice"),
    ],
)
def test_bad_settings_re_render_with_the_reason_and_save_nothing(
    org_a, admin_user, client_for, changes, field, message
) -> None:
    response = client_for(admin_user).post(reverse("integrations:fhir_connection_create"), {**FORM, **changes})
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    with organization_context(org_a):
        assert not FhirConnection.objects.exists()


def test_the_bearer_token_is_write_only(org_a, admin_user, client_for) -> None:
    client = client_for(admin_user)
    client.post(
        reverse("integrations:fhir_connection_create"), {**FORM, "auth_type": "bearer", "bearer_token": "tok-S3CRET"}
    )
    connection = _saved(org_a)
    edit = reverse("integrations:fhir_connection_edit", args=[connection.pk])
    for url in (edit, reverse("integrations:fhir_connection", args=[connection.pk])):
        assert b"tok-S3CRET" not in client.get(url).content
    client.post(edit, {**FORM, "auth_type": "bearer", "bearer_token": "", "interval_minutes": "15"})
    connection = _saved(org_a)
    assert connection.bearer_token == "tok-S3CRET" and connection.interval_minutes == 15  # kept, and saved


def test_a_new_base_url_is_a_confirmed_move_that_keeps_the_links(org_a, admin_user, client_for) -> None:
    client = client_for(admin_user)
    client.post(reverse("integrations:fhir_connection_create"), FORM)
    connection = _saved(org_a)
    edit = reverse("integrations:fhir_connection_edit", args=[connection.pk])
    moved = {**FORM, "base_url": "https://ehr2.example/fhir/R4"}
    refused = client.post(edit, moved)
    assert refused.status_code == 400 and "Same server at a new address" in " ".join(
        refused.context["form"].errors["base_url"]
    )
    assert _saved(org_a).base_url == "https://ehr.example/fhir/R4"
    assert client.post(edit, {**FORM, "base_url": "https://ehr.example/fhir/R4/"}).status_code == 302  # same server
    assert client.post(edit, {**moved, "same_server": "on"}).status_code == 302
    connection = _saved(org_a)
    assert connection.base_url == "https://ehr2.example/fhir/R4"
    assert connection.source_system == "https://ehr.example/fhir/R4"  # links keyed as before


def test_a_generated_key_is_served_as_a_jwks_the_ehr_accepts_and_a_rotation_replaces_it(
    org_a, admin_user, client_for, client, connection: FhirConnection, ehr: FakeEhr
) -> None:
    staff = client_for(admin_user)
    assert staff.post(reverse("integrations:fhir_connection_keys", args=[connection.pk])).status_code == 302
    connection = _saved(org_a)
    url = reverse("integrations:fhir_connection_jwks", kwargs={"org_slug": org_a.slug, "pk": connection.pk})
    assert url.encode() in staff.get(reverse("integrations:fhir_connection", args=[connection.pk])).content
    response = client.get(url)  # the EHR, not signed in
    assert response.status_code == 200 and response["Content-Type"] == "application/jwk-set+json"
    first = response.json()
    (jwk,) = first["keys"]
    assert set(jwk) == {"kty", "kid", "use", "alg", "key_ops", "n", "e"}  # the public half only
    assert (jwk["kty"], jwk["alg"], jwk["kid"]) == ("RSA", "RS384", connection.key_id)
    assert "BEGIN" not in response.content.decode()

    ehr.jwks = first  # registered at the EHR: our assertions are accepted
    services.connection_client(connection).get(ehr.base + "/Patient")
    assert ehr.tokens_issued == 1

    staff.post(reverse("integrations:fhir_connection_keys", args=[connection.pk]))
    rotated = _saved(org_a)
    second = client.get(url).json()
    assert rotated.key_id != connection.key_id and second["keys"][0]["kid"] == rotated.key_id
    with pytest.raises(FhirClientError, match="401"):  # the EHR still holds the old key only
        services.connection_client(rotated).get(ehr.base + "/Patient")
    ehr.jwks = second
    services.connection_client(rotated).get(ehr.base + "/Patient")
    assert ehr.tokens_issued == 2


def test_personas_and_walls(
    org_a, org_b, admin_user, nurse_user, other_org_user, client_for, client, connection: FhirConnection
) -> None:
    edit = reverse("integrations:fhir_connection_edit", args=[connection.pk])
    keys = reverse("integrations:fhir_connection_keys", args=[connection.pk])
    nurse = client_for(nurse_user)
    assert nurse.get(reverse("integrations:fhir_connection_create")).status_code == 403
    assert nurse.get(edit).status_code == 403 and nurse.post(keys).status_code == 403
    other = client_for(other_org_user)
    assert other.get(edit).status_code == 404 and other.post(keys).status_code == 404
    # The key set answers only under the connection's own organization, and only once it has a key.
    own = reverse("integrations:fhir_connection_jwks", kwargs={"org_slug": org_a.slug, "pk": connection.pk})
    wrong = reverse("integrations:fhir_connection_jwks", kwargs={"org_slug": org_b.slug, "pk": connection.pk})
    with organization_context(org_a):
        FhirConnection.objects.filter(pk=connection.pk).update(key_id="")
    assert client.get(own).status_code == 404
    client_for(admin_user).post(keys)
    assert client.get(own).status_code == 200 and client.get(wrong).status_code == 404
