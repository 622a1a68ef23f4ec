"""The quality-measures pages: aggregates for every analytics role (PHI-free, suppressed, CSV of the
same cells), the drill-down worklist for worklist roles only (analysts 403; access-logged LIST naming
each patient shown), the other organization, hostile filters. Time frozen at 16 June 2026, noon in Chicago.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from django.urls import reverse

from analytics.effectiveness import build_treatment_changes
from analytics.measures import build_measure_results
from compliance.models import AccessAction, AccessLog
from healthcrm.tenancy import organization_context
from patients.models import CarePlan, Condition, Goal, Observation
from patients.services import blood_pressure_components
from tests.clocks import CHICAGO
from tests.factories import AppointmentFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 16, 12, 0, tzinfo=CHICAGO)


@pytest.fixture(autouse=True)
def frozen() -> Any:
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def clinic(org_a: Any) -> dict[str, Any]:
    """Dr Main: 12 hypertensive patients seen in March 2026, 11 controlled (120/70) and 1 not (150/95).

    CMS165 for the period to 30 June 2026: denominator 12, numerator 11, not met 1 (under 11: hidden).
    """
    with organization_context(org_a):
        doctor = PractitionerFactory(display_name="Dr Main")
        patients = []
        for i in range(12):
            p = PatientFactory(date_of_birth=date(1966, 1, 1), family_name=f"Zyxwv{i}")
            Condition.objects.create(patient=p, code="38341003", display="Hypertension", onset_date=date(2015, 1, 1))
            start = datetime(2026, 3, 2 + i, 9, 0, tzinfo=CHICAGO)
            AppointmentFactory(
                patient=p,
                practitioner=doctor,
                starts_at=start,
                ends_at=start + timedelta(minutes=30),
                status="completed",
            )
            systolic, diastolic = (150, 95) if i == 0 else (120, 70)
            Observation.objects.create(
                patient=p,
                code="85354-9",
                display="Blood pressure",
                category="vital-signs",
                effective_at=start,
                unit="mm[Hg]",
                components=blood_pressure_components(Decimal(systolic), Decimal(diastolic)),
            )
            patients.append(p)
        build_measure_results(None, NOW)
        return {"org": org_a, "doctor": doctor, "patients": patients, "uncontrolled": patients[0]}


def test_analyst_sees_rates_trend_and_providers_without_any_patient(
    clinic: dict[str, Any], analyst_user: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(analyst_user)
    with django_assert_max_num_queries(21):  # the same for any number of measures, periods or providers
        response = client.get(reverse("analytics:measures"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "CMS165v12" in page and "CMS122v12" in page and "Dr Main" in page
    assert 'id="chart-cms165v12-trend-chart"' in page and 'id="chart-cms165v12-provider-chart"' in page
    assert "Screening for Depression" in page and 'id="chart-cms2v13-trend-chart"' in page  # every measure
    for patient in clinic["patients"]:
        assert patient.family_name not in page
    # The drill-down link is for worklist roles only.
    assert 'data-testid="gaps-cms165v12"' not in page
    assert reverse("analytics:measure_gaps") not in page


def test_the_csv_holds_the_pages_cells(clinic: dict[str, Any], analyst_user: Any, client_for: Any) -> None:
    client = client_for(analyst_user)
    exported = client.get(reverse("analytics:measures"), {"export": "clinic"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    cms165 = next(row for row in rows if row[0].startswith("CMS165v12"))
    # CMS165: met 11, not met 1 (<11), excluded 0, total 12; the rate would give the 1 back: hidden.
    # Met 11 is withheld ("hidden") since the row total 12 would give the 1 back; excluded 0 is shown.
    assert cms165[1:5] == ["hidden", "<11", "0", "12"]
    assert cms165[5] == "suppressed"
    # CMS130: the 12 patients (aged 60) all unscreened: 0 of 12 with its Wilson interval (0 % to 24.2 %).
    cms130 = next(row for row in rows if row[0].startswith("CMS130v12"))
    assert cms130[1:] == ["0", "12", "0", "12", "0.0", "0.0", "24.2"]
    providers = client.get(reverse("analytics:measures"), {"export": "cms165v12-providers"})
    assert providers.status_code == 200 and b"Dr Main" in providers.content
    assert client.get(reverse("analytics:measures"), {"export": "nope"}).status_code == 404


def test_a_nurse_gets_the_drill_down_and_it_is_access_logged(
    clinic: dict[str, Any], nurse_user: Any, client_for: Any, django_assert_max_num_queries: Any
) -> None:
    client = client_for(nurse_user)
    page = client.get(reverse("analytics:measures")).content.decode()
    assert 'data-testid="gaps-cms165v12"' in page
    url = reverse("analytics:measure_gaps")
    with django_assert_max_num_queries(19):  # sign-in, tenancy and the access log included; no query per patient
        response = client.get(url, {"measure": "cms165v12", "period": "2026-06-30"})
    assert response.status_code == 200
    listed = response.content.decode()
    # Only the one patient not controlled (150/95) is a gap.
    assert clinic["uncontrolled"].family_name in listed
    assert all(p.family_name not in listed for p in clinic["patients"][1:])
    with organization_context(clinic["org"]):
        entry = AccessLog.objects.get(view_name="analytics:measure_gaps")
    assert entry.action == AccessAction.LIST and entry.actor_id == nurse_user.pk
    assert entry.records == [f"patients.patient:{clinic['uncontrolled'].pk}"]


def test_analysts_get_403_on_the_drill_down_and_it_is_logged_as_denied(
    clinic: dict[str, Any], analyst_user: Any, client_for: Any
) -> None:
    response = client_for(analyst_user).get(reverse("analytics:measure_gaps"), {"measure": "cms165v12"})
    assert response.status_code == 403
    assert clinic["uncontrolled"].family_name not in response.content.decode()
    with organization_context(clinic["org"]):
        assert AccessLog.objects.get(view_name="analytics:measure_gaps").action == AccessAction.DENIED


def test_roles_without_aggregates_get_403(
    clinic: dict[str, Any], frontdesk_user: Any, compliance_user: Any, client_for: Any
) -> None:
    for user in (frontdesk_user, compliance_user):
        client = client_for(user)
        assert client.get(reverse("analytics:measures")).status_code == 403
        assert client.get(reverse("analytics:effectiveness")).status_code == 403
        assert client.get(reverse("analytics:measure_gaps")).status_code == 403


def test_the_other_organization_sees_none_of_it(clinic: dict[str, Any], other_org_user: Any, client_for: Any) -> None:
    client = client_for(other_org_user)
    page = client.get(reverse("analytics:measures"), {"practitioner": clinic["doctor"].pk})
    # Another clinic's provider id is not a choice here: the form says so, nothing of clinic A shows.
    assert page.status_code == 200
    assert "Dr Main" not in page.content.decode()
    gaps = client.get(reverse("analytics:measure_gaps"), {"measure": "cms165v12", "period": "2026-06-30"})
    assert gaps.status_code == 200
    assert clinic["uncontrolled"].family_name not in gaps.content.decode()


def test_bad_filters_re_render_with_the_defaults(clinic: dict[str, Any], nurse_user: Any, client_for: Any) -> None:
    client = client_for(nurse_user)
    for query in ({"period": "2026-13-45"}, {"practitioner": "x'--"}, {"measure": "<script>", "period": "nope"}):
        assert client.get(reverse("analytics:measures"), query).status_code == 200
        assert client.get(reverse("analytics:measure_gaps"), query).status_code == 200
    page = client.get(reverse("analytics:measures"), {"period": "1999-01-31"}).content.decode()
    assert "Select a valid choice" in page


def test_effectiveness_page_hides_small_groups(clinic: dict[str, Any], analyst_user: Any, client_for: Any) -> None:
    # Three of the hypertensive patients on a plan with a BP goal: a group under 11 -> "<11", no mean.
    with organization_context(clinic["org"]):
        for p in clinic["patients"][:3]:
            plan = CarePlan.objects.create(patient=p, title="Hypertension", status="active")
            CarePlan.objects.filter(pk=plan.pk).update(created_at=datetime(2026, 4, 1, 9, 0, tzinfo=CHICAGO))
            Goal.objects.create(care_plan=plan, description="BP", observation_code="85354-9", targets=[])
            Observation.objects.create(
                patient=p,
                code="85354-9",
                display="Blood pressure",
                category="vital-signs",
                effective_at=datetime(2026, 6, 1, 9, 0, tzinfo=CHICAGO),
                unit="mm[Hg]",
                components=blood_pressure_components(Decimal(118), Decimal(70)),
            )
        build_treatment_changes(None, NOW)
    client = client_for(analyst_user)
    page = client.get(reverse("analytics:effectiveness")).content.decode()
    assert "&lt;11" in page
    exported = client.get(reverse("analytics:effectiveness"), {"export": "effectiveness"})
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    hypertension = next(r for r in rows if r[0] == "Hypertension")
    assert hypertension[2] == "<11" and hypertension[3] == ""
