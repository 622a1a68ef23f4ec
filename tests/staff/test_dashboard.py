"""Each role's dashboard shows its own work; names only where the role may see them, access-logged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse

from analytics.refresh import refresh_run
from compliance.models import AccessLog
from healthcrm.tenancy import organization_context
from patients.models import CareTeamMember, Observation, Practitioner
from patients.services import blood_pressure_components
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

# The suite's default clock: 23:30 on 16 June 2026 in Chicago (04:30 UTC on the 17th).
TODAY_0900 = datetime(2026, 6, 16, 14, 0, tzinfo=UTC)  # 09:00 Chicago
TOMORROW_0900 = TODAY_0900 + timedelta(days=1)


def _panel(response: Any, key: str) -> str:
    page = response.content.decode()
    start = page.index(f'data-testid="panel-{key}"')
    return page[start : page.index("</section>", start)]


def test_front_desk_sees_todays_arrivals_and_tomorrows_unconfirmed(
    org_a: Any, frontdesk_user: Any, client_for: Any
) -> None:
    with organization_context(org_a):
        doc = PractitionerFactory(display_name="Dr Ames")
        arriving = PatientFactory(given_name="Ottoline", family_name="Arrivesoon", preferred_name="")
        AppointmentFactory(patient=arriving, practitioner=doc, starts_at=TODAY_0900, status="booked")
        AppointmentFactory(practitioner=doc, starts_at=TODAY_0900 + timedelta(hours=1), status="completed")
        unconfirmed = PatientFactory(given_name="Peregrine", family_name="Notyetsure", preferred_name="")
        AppointmentFactory(patient=unconfirmed, practitioner=doc, starts_at=TOMORROW_0900, status="booked")
        AppointmentFactory(practitioner=doc, starts_at=TOMORROW_0900 + timedelta(hours=1), status="confirmed")
    response = client_for(frontdesk_user).get(reverse("dashboard"))
    arrivals = _panel(response, "arrivals")
    # Today: one booked (still to arrive), one completed (already seen): 1.
    assert "Still to arrive</dt><dd>1<" in arrivals and "Ottoline Arrivesoon" in arrivals
    tomorrow = _panel(response, "unconfirmed")
    # Tomorrow: one booked (unconfirmed), one confirmed: 1.
    assert "Unconfirmed</dt><dd>1<" in tomorrow and "Peregrine Notyetsure" in tomorrow
    with organization_context(org_a):
        log = AccessLog.objects.get(view_name="dashboard")
        assert f"patients.patient:{arriving.pk}" in log.records
        assert f"patients.patient:{unconfirmed.pk}" in log.records


def test_provider_sees_schedule_and_out_of_range_panel_patients(
    org_a: Any, provider_user: Any, client_for: Any
) -> None:
    with organization_context(org_a):
        me = Practitioner.objects.create(display_name="Dr Me", user=provider_user)
        visiting = PatientFactory(given_name="Ulrike", family_name="Todayvisit", preferred_name="")
        AppointmentFactory(patient=visiting, practitioner=me, starts_at=TODAY_0900)
        high, fine, a1c = (
            PatientFactory(given_name=n, family_name="Panelist", preferred_name="")
            for n in ("Highbp", "Finebp", "Higha1c")
        )
        for patient in (high, fine, a1c):
            CareTeamMember.objects.create(patient=patient, user=provider_user, team_role="provider")
        when = TODAY_0900 - timedelta(days=10)
        for patient, systolic in ((high, 130), (high, 152), (fine, 150), (fine, 128)):
            Observation.objects.create(
                patient=patient,
                code="85354-9",
                display="BP",
                category="vital-signs",
                unit="mm[Hg]",
                effective_at=when,
                components=blood_pressure_components(Decimal(systolic), Decimal(80)),
            )
            when += timedelta(days=1)  # the later reading is the latest: high 152, fine 128
        Observation.objects.create(
            patient=a1c,
            code="4548-4",
            display="HbA1c",
            category="laboratory",
            unit="%",
            value_quantity=Decimal("9.4"),
            effective_at=when,
        )
    response = client_for(provider_user).get(reverse("dashboard"))
    assert "Ulrike Todayvisit" in _panel(response, "schedule")
    panel = _panel(response, "out-of-control")
    assert "Highbp Panelist" in panel and "BP systolic 152" in panel
    assert "Higha1c Panelist" in panel and "HbA1c 9.4 %" in panel
    assert "Finebp" not in panel
    assert "Out of range</dt><dd>2<" in panel


def test_analyst_dashboard_has_rates_and_no_names(org_a: Any, analyst_user: Any, client_for: Any) -> None:
    """June so far: 24 completed + 12 no-shows = 36 due -> no-show 33 %, show 67 %."""
    with organization_context(org_a):
        doc = PractitionerFactory()
        patient = PatientFactory(family_name="Zanzibarian")
        for i in range(36):
            AppointmentFactory(
                patient=patient,
                practitioner=doc,
                status="completed" if i < 24 else "no_show",
                starts_at=datetime(2026, 6, 1, 14, 0, tzinfo=UTC) + timedelta(hours=9 * i),
            )
        refresh_run(full=True, now=TODAY_0900 + timedelta(hours=12))
    response = client_for(analyst_user).get(reverse("dashboard"))
    rates = _panel(response, "rates")
    assert "This month: visits due</dt><dd>36<" in rates
    assert "This month: no-show rate</dt><dd>33 %<" in rates
    assert "Last month: visits due</dt><dd>0<" in rates and "Last month: no-show rate</dt><dd>–<" in rates
    assert "Zanzibarian" not in response.content.decode()
    with organization_context(org_a):
        assert not AccessLog.objects.filter(view_name="dashboard").exists()  # nothing named: nothing logged


def test_compliance_sees_access_volume(org_a: Any, compliance_user: Any, frontdesk_user: Any, client_for: Any) -> None:
    with organization_context(org_a):
        PatientFactory()
    client_for(frontdesk_user).get(reverse("patients:list"))  # one list (access-logged)
    response = client_for(compliance_user).get(reverse("dashboard"))
    panel = _panel(response, "access")
    assert "PHI views and lists</dt><dd>1<" in panel and "People</dt><dd>1<" in panel
