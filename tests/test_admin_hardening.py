"""Issue 9, the Django admin: search terms out of URLs and logs, access-logged blind autocomplete
(item 5), users chosen among the organization's members (6), security events audited (7), and no
500 for hostile changelist lookups or for the platform administrator with no organization (19)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from auditlog.models import LogEntry
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import models
from django.urls import reverse

from compliance.models import AccessAction, AccessLog
from healthcrm.models import Membership, Organization
from healthcrm.tenancy import SESSION_KEY, organization_context
from patients.models import CareTeamMember, Practitioner
from tests.factories import MembershipFactory, PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def north_admin(org_a: Organization) -> Any:
    user = UserFactory(username="admin@north.example", is_staff=True)
    MembershipFactory(user=user, organization=org_a, role="admin")
    return user


@pytest.fixture
def lake_admin(org_b: Organization) -> Any:
    user = UserFactory(username="admin@lakeside.example", is_staff=True)
    MembershipFactory(user=user, organization=org_b, role="admin")
    return user


@pytest.fixture
def compliance_officer(org_a: Organization) -> Any:
    user = UserFactory(username="compliance@north.example")
    MembershipFactory(user=user, organization=org_a, role="compliance")
    return user


@pytest.fixture
def platform_admin(db: None) -> Any:
    return UserFactory(username="root@platform.example", is_staff=True, is_superuser=True)


def _sign_in(client: Any, user: Any) -> Any:
    client.force_login(user)
    if True:  # signed in with a second factor (organization settings or staff rules may require it)
        from django_otp import DEVICE_ID_SESSION_KEY

        from staff.models import AuthenticatorDevice as TOTPDevice

        device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
        session = client.session
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()
    return client


# -- Item 5: autocomplete and search ----------------------------------------------------------


def test_autocomplete_over_patients_is_access_logged_and_blind(client: Any, north_admin: Any, org_a: Any) -> None:
    with organization_context(org_a):
        found = PatientFactory(family_name="Searchable", mrn="S-42")
        PatientFactory(family_name="Hiddenaway")
    _sign_in(client, north_admin)
    url = reverse("admin:autocomplete")
    base = {"app_label": "patients", "model_name": "appointment", "field_name": "patient"}
    response = client.get(url, {**base, "term": "S-42"})
    assert response.status_code == 200
    assert [r["id"] for r in response.json()["results"]] == [str(found.pk)]
    # Blind indexes match name prefixes, never a substring of the plaintext.
    assert client.get(url, {**base, "term": "archab"}).json()["results"] == []
    with organization_context(org_a):
        rows = list(AccessLog.objects.filter(view_name__startswith="admin:autocomplete").order_by("pk"))
    assert [row.action for row in rows] == [AccessAction.SEARCH, AccessAction.SEARCH]
    assert rows[0].object_ids == [str(found.pk)] and rows[0].search_fields == ["term"]
    assert rows[0].search_fingerprint and "S-42" not in rows[0].search_fingerprint


def test_changelist_search_is_posted_and_its_term_never_in_a_url(client: Any, north_admin: Any, org_a: Any) -> None:
    with organization_context(org_a):
        PatientFactory(family_name="Searchable", mrn="S-42")
        PatientFactory(family_name="Hiddenaway")
    _sign_in(client, north_admin)
    url = reverse("admin:patients_patient_changelist")
    page = client.get(url).content.decode()
    assert 'id="changelist-search" method="post"' in page
    response = client.post(url, {"_search": "1", "q": "S-42", "is_active__exact": "1"})
    assert response.status_code == 302
    location = response["Location"]
    assert "S-42" not in location and "S-4" not in location and "qk=" in location and "is_active__exact=1" in location
    content = client.get(location).content.decode()
    assert "Searchable" in content and "Hiddenaway" not in content
    # The term is in the search box, never in a link of the page.
    for href in content.split('href="')[1:]:
        assert "S-42" not in href.split('"')[0] and "q=" not in href.split('"')[0]
    # A term typed into the address bar leaves it at once.
    typed = client.get(url, {"q": "S-42"})
    assert typed.status_code == 302 and "S-42" not in typed["Location"]
    assert "Searchable" in client.get(typed["Location"]).content.decode()
    with organization_context(org_a):
        searched = AccessLog.objects.filter(action=AccessAction.SEARCH, view_name="admin:patients_patient_changelist")
        assert searched.count() == 2


def test_request_logs_never_print_query_strings() -> None:
    record = logging.LogRecord(
        "django.server",
        logging.INFO,
        __file__,
        1,
        '"%s" %s %s',
        ("GET /admin/autocomplete/?term=1961-04-12 HTTP/1.1", "200", "52"),
        None,
    )
    for log_filter in logging.getLogger("django.server").filters:
        log_filter.filter(record)
    assert "1961" not in record.getMessage() and "/admin/autocomplete/" in record.getMessage()
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "--access-logformat" in compose and "%(U)s" in compose and "%(r)s" not in compose and "%(q)s" not in compose


# -- Item 6: users are the organization's members ----------------------------------------------


def test_user_fields_offer_only_the_organizations_members(
    client: Any, north_admin: Any, lake_admin: Any, org_a: Any
) -> None:
    _sign_in(client, north_admin)
    for name in ("patients_practitioner_add", "patients_careteammember_add"):
        form = client.get(reverse(f"admin:{name}")).content.decode()
        assert "admin@north.example" in form and "admin@lakeside.example" not in form
    # Lakeside's admin, by id: refused, and the error names nobody.
    response = client.post(
        reverse("admin:patients_practitioner_add"),
        {"display_name": "Dr. Pulled In", "user": lake_admin.pk, "is_active": "on"},
    )
    assert response.status_code == 200 and "admin@lakeside.example" not in response.content.decode()
    assert "Select a valid choice" in response.content.decode()
    with organization_context(org_a):
        patient = PatientFactory()
    response = client.post(
        reverse("admin:patients_careteammember_add"),
        {"patient": patient.pk, "user": lake_admin.pk, "team_role": "nurse", "active": "on"},
    )
    assert response.status_code == 200 and "admin@lakeside.example" not in response.content.decode()
    with organization_context(org_a):
        assert not Practitioner.objects.exists() and not CareTeamMember.objects.exists()


def test_org_admin_cannot_add_members_only_change_roles(
    client: Any, north_admin: Any, lake_admin: Any, nurse_user: Any, org_a: Any
) -> None:
    _sign_in(client, north_admin)
    assert client.get(reverse("admin:healthcrm_membership_add")).status_code == 403
    response = client.post(reverse("admin:healthcrm_membership_add"), {"user": lake_admin.pk, "role": "admin"})
    assert response.status_code == 403
    assert not Membership.objects.filter(user=lake_admin, organization=org_a).exists()
    with organization_context(org_a):
        membership = Membership.objects.get(user=nurse_user, organization=org_a)
    change = reverse("admin:healthcrm_membership_change", args=[membership.pk])
    page = client.get(change).content.decode()
    assert "invitation" in page and "admin@lakeside.example" not in page
    # The user is read-only: a posted user id is ignored.
    client.post(change, {"user": lake_admin.pk, "role": "coordinator", "title": "", "is_active": "on"})
    with organization_context(org_a):
        membership.refresh_from_db()
    assert membership.user_id == nurse_user.pk and membership.role == "coordinator"


# -- Item 7: security events are audited and shown to the compliance officer -------------------


def _security_events(org: Organization) -> list[LogEntry]:
    with organization_context(org):
        return list(LogEntry.objects.order_by("pk"))


def test_security_changes_are_audited_with_secrets_redacted(
    client: Any, north_admin: Any, compliance_officer: Any, nurse_user: Any, org_a: Any, org_b: Any
) -> None:
    from engagement.models import ChannelSettings
    from integrations.models import DeviceToken
    from staff.models import AuthenticatorDevice as TOTPDevice

    before = len(_security_events(org_a))
    _sign_in(client, north_admin)
    with organization_context(org_a):
        membership = Membership.objects.get(user=nurse_user, organization=org_a)
    client.post(
        reverse("admin:healthcrm_membership_change", args=[membership.pk]),
        {"role": "coordinator", "title": "", "is_active": "on"},
    )
    client.post(
        reverse("admin:healthcrm_organization_change", args=[org_a.pk]),
        {
            "name": org_a.name,
            "slug": org_a.slug,
            "timezone": org_a.timezone,
            "phone": "",
            "settings": "{}",
            "is_active": "on",
            "require_mfa": "on",
        },
    )
    with organization_context(org_a):
        nurse_user.set_password("a new long passphrase 42")
        nurse_user.save()
        device = TOTPDevice.objects.create(user=nurse_user, name="phone", confirmed=True)
        DeviceToken.objects.create(name="scale", token_hash="f" * 64, prefix="hc_ffff")
        channel, _ = ChannelSettings.objects.get_or_create(organization=org_a)
        channel.twilio_auth_token = "twilio-secret-token"
        channel.save()
    entries = _security_events(org_a)[before:]
    by_model = {(e.content_type.model, tuple(sorted(e.changes_dict))) for e in entries}
    models_seen = {model for model, _ in by_model}
    assert {
        "membership",
        "organization",
        "user",
        "authenticatordevice",
        "devicetoken",
        "channelsettings",
    } <= models_seen
    role_change = next(e for e in entries if e.content_type.model == "membership")
    assert role_change.changes_dict["role"] == ["nurse", "coordinator"] and role_change.actor_id == north_admin.pk
    assert role_change.remote_addr == "127.0.0.1"
    assert next(e for e in entries if e.content_type.model == "organization").changes_dict["require_mfa"] == [
        "False",
        "True",
    ]
    serialized = " ".join(str(e.changes) for e in entries)
    for secret in ("twilio-secret-token", device.key, "f" * 64, nurse_user.password):
        assert secret not in serialized
    assert "[REDACTED]" in serialized
    # Visible to the compliance officer, not to the other organization.
    page = _sign_in(client, compliance_officer).get(reverse("compliance:security_events"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "coordinator" in content and "require_mfa" in content and "twilio-secret-token" not in content
    assert not any(
        e.content_type.model == "membership" and e.object_pk == str(membership.pk) for e in _security_events(org_b)
    )


def test_security_events_need_the_compliance_permission(client: Any, nurse_user: Any, other_org_user: Any) -> None:
    assert client.get(reverse("compliance:security_events")).status_code == 302  # signed out
    assert _sign_in(client, nurse_user).get(reverse("compliance:security_events")).status_code == 403


# -- Item 19: the platform administrator's organization, and hostile lookups -------------------


def test_platform_admin_chooses_an_organization_and_the_choice_is_audited(
    client: Any, platform_admin: Any, org_a: Any
) -> None:
    _sign_in(client, platform_admin)
    for name in ("patients_patient_changelist", "compliance_accesslog_changelist"):
        response = client.get(reverse(f"admin:{name}"))
        assert response.status_code == 302 and reverse("admin:choose_organization") in response["Location"]
    chooser = client.get(reverse("admin:choose_organization"))
    assert chooser.status_code == 200 and "North Clinic" in chooser.content.decode()
    response = client.post(
        reverse("admin:choose_organization"), {"organization": org_a.pk, "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert client.session[SESSION_KEY] == org_a.pk
    assert client.get(reverse("admin:patients_patient_changelist")).status_code == 200
    assert client.get(reverse("admin:compliance_accesslog_changelist")).status_code == 200
    entered = [e for e in _security_events(org_a) if e.action == LogEntry.Action.ACCESS]
    assert len(entered) == 1 and entered[0].actor_id == platform_admin.pk
    assert entered[0].additional_data["event"] == "platform_admin_entered"
    # Back to platform pages only.
    client.post(reverse("admin:choose_organization"), {"organization": ""})
    assert SESSION_KEY not in client.session


def test_org_admin_cannot_choose_an_organization(client: Any, north_admin: Any) -> None:
    assert _sign_in(client, north_admin).get(reverse("admin:choose_organization")).status_code == 403


_HOSTILE = ["abc", "99999999999999999999", "-1", "\x00"]


def _hostile_queries(model: type[models.Model], model_admin: Any) -> list[dict[str, str]]:
    """Hostile values for every parameter a changelist reads (a table kept small: ~50 admins)."""
    queries: list[dict[str, str]] = [{"p": v, "o": v} for v in _HOSTILE]
    queries += [{"q": "\x00"}, {"q": "-1", "all": "", "e": "1"}, {"_facets": "\x00", "p": "9999-12-31"}]
    hierarchy = model_admin.date_hierarchy
    if hierarchy:
        queries += [{f"{hierarchy}__year": v} for v in [*_HOSTILE, "9999", "0"]]
        queries += [{f"{hierarchy}__year": "2026", f"{hierarchy}__month": v} for v in ("-1", "99999999999999999999")]
        queries += [
            {f"{hierarchy}__year": "9999", f"{hierarchy}__month": "12", f"{hierarchy}__day": v}
            for v in ("-1", "31", "99999999999999999999")
        ]
    # Date fields outside the hierarchy: refused lookups (400) or Django's ?e=1, never a 500.
    dates = [f.name for f in model._meta.get_fields() if isinstance(f, (models.DateField, models.DateTimeField))]
    for part in ("year", "month", "day"):
        queries.append({f"{name}__{part}": "-1" for name in dates if name != hierarchy})
    specs = [spec for spec in model_admin.list_filter if isinstance(spec, str)]
    for spec in specs:
        queries += [{f"{spec}__exact": "99999999999999999999"}, {f"{spec}__id__exact": "abc"}]
    queries.append({f"{spec}__exact": "\x00" for spec in specs} or {"id__exact\x00": "1"})
    return [query for query in queries if query]


@pytest.mark.slow
@pytest.mark.parametrize("persona", ["org_admin", "platform_admin_in_org", "platform_admin_no_org"])
def test_every_changelist_survives_hostile_lookups(
    client: Any, persona: str, north_admin: Any, platform_admin: Any, org_a: Any
) -> None:
    user = north_admin if persona == "org_admin" else platform_admin
    _sign_in(client, user)
    if persona == "platform_admin_in_org":
        client.post(reverse("admin:choose_organization"), {"organization": org_a.pk})
    walked = 0
    for model, model_admin in admin.site._registry.items():
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for query in _hostile_queries(model, model_admin):
            response = client.get(url, query)
            assert response.status_code < 500, (url, query)
            if response.status_code == 302 and "qk=" in response["Location"]:
                assert client.get(response["Location"]).status_code < 500, (url, query)
            walked += 1
    assert walked > 300
    assert get_user_model().objects.filter(pk=user.pk).exists()
