"""Population and cohort pages: who sees what, suppression on the page and in the CSV, cohort forms."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.urls import reverse

from analytics.cohorts import cohort_save
from analytics.models import Cohort
from analytics.refresh import refresh_run
from healthcrm.tenancy import organization_context
from patients.models import Condition
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 17, 4, 30, tzinfo=UTC)  # the suite's default clock
MIDDLE, YOUNG, OLDER = date(1976, 3, 1), date(1996, 3, 1), date(1956, 3, 1)  # 50, 30 and 70 on NOW


@pytest.fixture
def clinic(org_a: Any) -> dict[str, Any]:
    """Asthma: 40-64 12 with, 12 without; 18-39 11 with, 11 without; 65-74 1 with, 2 without (49 active)."""
    with organization_context(org_a):
        patients = []
        for born, with_, without in ((MIDDLE, 12, 12), (YOUNG, 11, 11), (OLDER, 1, 2)):
            for i in range(with_ + without):
                patient = PatientFactory(date_of_birth=born, preferred_language="en", family_name="Xylophoneworth")
                if i < with_:
                    Condition.objects.create(patient=patient, code="195967001", display="Asthma")
                patients.append(patient)
        refresh_run(full=True, now=NOW)
        cohort = cohort_save(name="Older asthma", definition={"conditions": ["asthma"], "age_bands": ["65-74"]})
    return {"org": org_a, "patients": patients, "cohort": cohort}


def test_analyst_sees_prevalence_with_small_cells_hidden_and_the_same_csv(
    clinic: dict[str, Any], analyst_user: Any, client_for: Any
) -> None:
    client = client_for(analyst_user)
    url = reverse("analytics:population")
    response = client.get(url, {"condition": "asthma"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Asthma: prevalence by age band" in page and "&lt;11" in page
    for patient in clinic["patients"]:
        assert patient.family_name not in page
    rows = list(
        csv.reader(io.StringIO(client.get(url, {"condition": "asthma", "export": "age_band"}).content.decode()))
    )
    by_band = {row[0]: row for row in rows[1:]}
    # 40-64: 12 with asthma, 12 without, 24, 50.0 %. 65-74: 1 with, 2 without (3): below 11.
    assert by_band["40–64"][1:5] == ["12", "12", "24", "50.0"]
    assert by_band["65–74"][1:4] == ["<11", "<11", "<11"]
    # 18-39 (11 and 11) is withheld: with the published totals it would give 65-74's counts back.
    assert by_band["18–39"][1:4] == ["hidden", "hidden", "hidden"]
    # All: 24 with (12 + 11 + 1), 25 without (12 + 11 + 2), 49 active.
    assert by_band["All active patients"][1:4] == ["24", "25", "49"]
    # The condition overview: asthma is 24 of 49 active patients (49 %); the chart's data table in CSV.
    overview = list(csv.reader(io.StringIO(client.get(url, {"export": "conditions"}).content.decode())))
    assert ["Asthma", "49 %"] in overview
    assert client.get(url, {"export": "nope"}).status_code == 404
    # A value that is not a condition falls back to any chronic condition, never a 500.
    assert client.get(url, {"condition": "<script>"}).status_code == 200


def test_roles_without_aggregates_get_403(
    clinic: dict[str, Any], frontdesk_user: Any, compliance_user: Any, client_for: Any
) -> None:
    for user in (frontdesk_user, compliance_user):
        client = client_for(user)
        assert client.get(reverse("analytics:population")).status_code == 403
        assert client.get(reverse("analytics:cohorts")).status_code == 403


def test_cohort_size_is_suppressed_for_analysts_and_exact_for_care_roles(
    clinic: dict[str, Any],
    analyst_user: Any,
    coordinator_user: Any,
    client_for: Any,
    django_assert_max_num_queries: Any,
) -> None:
    cohort = clinic["cohort"]
    marker = f'data-testid="size-{cohort.pk}">'
    # One patient of 65-74 has asthma: the cohort has 1 patient.
    # Three cohorts, one count query for all of them: 16 for the page alone (signed in before).
    with organization_context(clinic["org"]):
        cohort_save(name="Asthma", definition={"conditions": ["asthma"]})
        cohort_save(name="Everyone", definition={})
    analyst = client_for(analyst_user)
    with django_assert_max_num_queries(16):
        page = analyst.get(reverse("analytics:cohorts")).content.decode()
    assert f"{marker}&lt;11<" in page
    page = client_for(coordinator_user).get(reverse("analytics:cohorts")).content.decode()
    assert f"{marker}1<" in page


def test_coordinator_creates_and_edits_a_cohort_and_bad_definitions_re_render(
    clinic: dict[str, Any], coordinator_user: Any, client_for: Any
) -> None:
    client = client_for(coordinator_user)
    bad = client.post(reverse("analytics:cohort_create"), {"name": "X", "definition": '{"conditions": ["gout"]}'})
    assert bad.status_code == 400 and "Unknown conditions: gout" in bad.content.decode()
    bad = client.post(reverse("analytics:cohort_create"), {"name": "X", "definition": "{oops"})
    assert bad.status_code == 400 and "Enter a valid JSON" in bad.content.decode()
    taken = client.post(reverse("analytics:cohort_create"), {"name": "Older asthma", "definition": "{}"})
    assert taken.status_code == 400 and "already exists" in taken.content.decode()
    created = client.post(
        reverse("analytics:cohort_create"), {"name": "High risk", "definition": '{"risk_tiers": [4]}'}
    )
    assert created.status_code == 302
    with organization_context(clinic["org"]):
        cohort = Cohort.objects.get(name="High risk")
        assert (cohort.definition, cohort.created_by_id) == ({"risk_tiers": [4]}, coordinator_user.pk)
    edited = client.post(
        reverse("analytics:cohort_edit", args=[cohort.pk]),
        {"name": "High risk", "definition": '{"risk_tiers": [3, 4]}'},
    )
    assert edited.status_code == 302
    with organization_context(clinic["org"]):
        cohort.refresh_from_db()
    assert cohort.definition == {"risk_tiers": [3, 4]}


def test_who_may_write_cohorts(
    clinic: dict[str, Any], analyst_user: Any, readonly_user: Any, other_org_user: Any, client_for: Any
) -> None:
    edit = reverse("analytics:cohort_edit", args=[clinic["cohort"].pk])
    for user in (analyst_user, readonly_user):  # view_cohort only
        client = client_for(user)
        assert client.get(reverse("analytics:cohorts")).status_code == 200
        assert client.get(reverse("analytics:cohort_create")).status_code == 403
        assert client.post(edit, {"name": "Renamed", "definition": "{}"}).status_code == 403
    # Another organization's user: the cohort does not exist for them.
    assert client_for(other_org_user).get(edit).status_code == 404
    with organization_context(clinic["org"]):
        clinic["cohort"].refresh_from_db()
    assert clinic["cohort"].name == "Older asthma"
