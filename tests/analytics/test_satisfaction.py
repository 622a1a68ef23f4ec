"""Satisfaction figures on a hand-built clinic: NPS, mean CSAT and response rate by provider,
location and month, small providers suppressed, comments never shown. Every expected number is
counted below, by hand."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from analytics import satisfaction
from analytics.filters import Filters, Period
from analytics.models import SurveyFact
from analytics.refresh import refresh_run
from analytics.suppression import HIDDEN, WITHHELD, determined
from engagement import services
from engagement.models import OutboundMessage, Rule, SurveyResponse
from healthcrm.tenancy import organization_context
from tests.factories import AppointmentFactory, LocationFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 17, 4, 30, tzinfo=UTC)  # the suite's default clock (23:30 on 16 June in Chicago)
JUNE = Filters(Period(date(2026, 6, 1), date(2026, 6, 30)), None, None, None)
COMMENT = "Dr Ada's receptionist was unkind"


class Clinic:
    """Builds sent survey messages (and answers) for one practitioner at one location."""

    def __init__(self, organization: Any) -> None:
        self.organization = organization
        self.rule = Rule.objects.create(name="Survey", kind="survey", template_key="satisfaction_survey")
        self.patients = [PatientFactory(preferred_channel="sms") for _ in range(3)]
        self.serial = 0

    def surveys(
        self, practitioner: Any, location: Any, answers: list[tuple[int, int | None, int | None] | None], *, day: int
    ) -> None:
        """One sent survey per item: None = not answered, else (nps, csat_access, csat_explain)."""
        for answer in answers:
            self.serial += 1
            ends = datetime(2026, 5, 1, 12, 0, tzinfo=UTC) + timedelta(hours=self.serial)  # no two overlap
            visit = AppointmentFactory(
                patient=self.patients[self.serial % 3],
                practitioner=practitioner,
                location=location,
                starts_at=ends - timedelta(minutes=30),
                ends_at=ends,
                status="completed",
            )
            message = services.outbox_enqueue(
                patient=visit.patient,
                rule=self.rule,
                subject_type="survey",
                subject_id=visit.pk,
                slot="survey",
                due_at=ends,
                channel="sms",
            )
            sent_at = datetime(2026, 6, day, 15, 0, tzinfo=UTC) if day else datetime(2026, 5, 20, 15, 0, tzinfo=UTC)
            OutboundMessage.objects.filter(pk=message.pk).update(status="delivered", sent_at=sent_at)
            message.refresh_from_db()
            if answer is not None:
                nps, access, explain = answer
                services.survey_response_record(
                    message=message,
                    answers=services.Answers(nps=nps, csat_access=access, csat_explain=explain, comment=COMMENT),
                    channel="link",
                    now=sent_at + timedelta(hours=1),
                )


@pytest.fixture
def clinic(org_a: Any) -> dict[str, Any]:
    """All sent in June 2026 but three in May (outside the period).

    Dr Ada at Elm (36 sent): 12 promoters (9 or 10; access 5, explain 4), 11 detractors (0-6; access 2,
        explain unanswered), 13 not answered, 0 passives.
    Dr Bo at Oak (22 sent): 11 promoters (10), 11 passives (7 or 8), no CSAT answers, 0 not answered.
    May (3 sent, Dr Bo): 3 detractors, outside June: not counted.
    """
    with organization_context(org_a):
        build = Clinic(org_a)
        ada, bo = PractitionerFactory(display_name="Dr Ada"), PractitionerFactory(display_name="Dr Bo")
        elm, oak = LocationFactory(name="Elm"), LocationFactory(name="Oak")
        ada_answers: list[Any] = [(9 + i % 2, 5, 4) for i in range(12)]
        ada_answers += [(i % 7, 2, None) for i in range(11)]
        ada_answers += [None] * 13
        build.surveys(ada, elm, ada_answers, day=3)
        build.surveys(bo, oak, [(10, None, None)] * 11 + [(7 + i % 2, None, None) for i in range(11)], day=10)
        build.surveys(bo, oak, [(2, None, None)] * 3, day=0)
        refresh_run(full=True, now=NOW)
        return {"org": org_a, "ada": ada, "bo": bo, "elm": elm, "oak": oak, "build": build}


def _rows(table: Any) -> dict[str, dict[str, Any]]:
    return {row["label"]: row for row in table.display_rows()}


def test_nps_csat_and_response_rate_by_provider(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        rows = _rows(satisfaction.satisfaction_table(JUNE, "provider"))
    ada, bo, everyone = rows["Dr Ada"], rows["Dr Bo"], rows["All surveys"]
    # Cells: promoters, passives, detractors, no response; total = surveys sent.
    assert (ada["cells"], ada["total"]) == ([12, 0, 11, 13], 36)
    assert (bo["cells"], bo["total"]) == ([11, 11, 0, 0], 22)
    assert (everyone["cells"], everyone["total"]) == ([23, 11, 11, 13], 58)  # May's 3 are outside June
    # NPS = (promoters − detractors) / answered × 100.
    assert ada["nps"] == pytest.approx((12 - 11) / 23 * 100)  # +4.3
    assert bo["nps"] == pytest.approx((11 - 0) / 22 * 100)  # +50
    assert everyone["nps"] == pytest.approx((23 - 11) / 45 * 100)  # +26.7
    # Response rate = answered / sent.
    assert ada["response_rate"][0] == pytest.approx(23 / 36)
    assert bo["response_rate"][0] == pytest.approx(22 / 22)
    assert everyone["response_rate"][0] == pytest.approx(45 / 58)
    # Mean CSAT: Ada's 23 access answers (12 × 5 + 11 × 2) / 23; her 12 explain answers all 4.
    assert ada["csat"] == [pytest.approx((12 * 5 + 11 * 2) / 23), pytest.approx(4.0)]
    assert bo["csat"] == [None, None]  # nobody answered them (fewer than 11 answers: not shown)
    assert everyone["csat"] == [pytest.approx(82 / 23), pytest.approx(4.0)]


def test_by_location_and_month_and_the_provider_filter(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        by_location = _rows(satisfaction.satisfaction_table(JUNE, "location"))
        by_month = _rows(satisfaction.satisfaction_table(JUNE, "month"))
        bo_only = Filters(JUNE.period, None, clinic["bo"], None)
        bo_months = _rows(satisfaction.satisfaction_table(bo_only, "month"))
        may = satisfaction.summary(JUNE, period=Period(date(2026, 5, 1), date(2026, 5, 31))).display_rows()[0]
    assert by_location["Elm"]["cells"] == [12, 0, 11, 13] and by_location["Oak"]["cells"] == [11, 11, 0, 0]
    assert list(by_month) == ["Jun 2026", "All surveys"]
    assert by_month["Jun 2026"]["total"] == 58  # 36 + 22
    assert bo_months["Jun 2026"]["cells"] == [11, 11, 0, 0]
    # May: Dr Bo's 3 detractors, a small cell: counts and NPS hidden.
    assert (may["cells"][2], may["total"], may["nps"], may["response_rate"]) == (HIDDEN, HIDDEN, None, None)


def test_a_small_provider_is_suppressed_and_cannot_be_solved_for(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        cy = PractitionerFactory(display_name="Dr Cy")
        # Dr Cy (4 sent): 2 promoters, 1 detractor, 1 not answered.
        clinic["build"].surveys(cy, clinic["elm"], [(10, 5, 5), (9, 5, 5), (3, 1, 1), None], day=12)
        refresh_run(full=True, now=NOW)
        table = satisfaction.satisfaction_table(JUNE, "provider")
    cy_row = _rows(table)["Dr Cy"]
    assert cy_row["cells"][0] == HIDDEN and cy_row["cells"][2] == HIDDEN and cy_row["total"] == HIDDEN
    assert (cy_row["nps"], cy_row["response_rate"], cy_row["csat"]) == (None, None, [None, None])
    # The attacker's view: nothing hidden follows from what is published and the table's sums.
    counts = table.counts
    assert determined(counts.published(), counts.lines(), counts.hidden) == set()
    # A row whose answered count cannot be known shows no NPS or rate, whatever else is shown.
    for row in table.display_rows():
        if table.answered(row["key"]) is None:
            assert row["nps"] is None and row["response_rate"] is None


def test_facts_hold_scores_and_no_comment(clinic: dict[str, Any]) -> None:
    field_names = {f.name for f in SurveyFact._meta.get_fields()}
    assert "comment" not in field_names
    with organization_context(clinic["org"]):
        assert SurveyFact.objects.count() == 36 + 22 + 3
        assert SurveyResponse.objects.count() == 23 + 22 + 3


def test_an_answer_after_the_last_refresh_is_picked_up_incrementally(clinic: dict[str, Any]) -> None:
    with organization_context(clinic["org"]):
        refresh_run(full=True)  # on the test's (ticking) clock: the answer below is newer than this run
        unanswered = SurveyFact.objects.filter(nps_group="none").values_list("message_id", flat=True).first()
        message = OutboundMessage.objects.get(pk=unanswered)
        services.survey_response_record(
            message=message, answers=services.Answers(nps=8), channel="sms_reply", now=timezone.now()
        )
        run = refresh_run()
        assert run.full is False and run.rows["surveys"] == 1
        assert SurveyFact.objects.get(message_id=unanswered).nps_group == "passive"


def test_analyst_sees_the_page_and_the_same_csv_without_comments(
    clinic: dict[str, Any], analyst_user: Any, client_for: Any
) -> None:
    client = client_for(analyst_user)
    url = reverse("analytics:satisfaction")
    response = client.get(url, {"start": "2026-06-01", "end": "2026-06-30"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Dr Ada" in page and "Satisfaction by provider" in page
    assert 'data-testid="headline-nps">+27<' in page  # (23 − 11) / 45 = +26.7
    assert 'data-testid="reading-trend"' in page and "The NPS was +27 in Jun 2026" in page
    assert "unkind" not in page and "receptionist" not in page
    exported = client.get(url, {"start": "2026-06-01", "end": "2026-06-30", "export": "provider"})
    assert exported["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    by_label = {row[0]: row for row in rows[1:]}
    # Label, 4 groups, sent, rate %, low, high, NPS, two CSAT means.
    assert by_label["Dr Ada"][:6] == ["Dr Ada", "12", "0", "11", "13", "36"]
    assert by_label["Dr Ada"][6] == f"{23 / 36 * 100:.1f}" and by_label["Dr Ada"][9] == "4"  # NPS +4.3
    assert by_label["Dr Ada"][10:] == [f"{82 / 23:.2f}", "4.00"]
    assert "unkind" not in exported.content.decode()


def test_the_page_shows_withheld_cells_for_a_small_provider(
    clinic: dict[str, Any], analyst_user: Any, client_for: Any
) -> None:
    with organization_context(clinic["org"]):
        cy = PractitionerFactory(display_name="Dr Cy")
        clinic["build"].surveys(cy, clinic["elm"], [(10, 5, 5), (9, 5, 5), (3, 1, 1), None], day=12)
        refresh_run(full=True, now=NOW)
    exported = client_for(analyst_user).get(
        reverse("analytics:satisfaction"), {"start": "2026-06-01", "end": "2026-06-30", "export": "provider"}
    )
    cy_row = next(row for row in csv.reader(io.StringIO(exported.content.decode())) if row[0] == "Dr Cy")
    assert set(cy_row[1:6]) <= {HIDDEN, WITHHELD, "0"} and cy_row[5] == HIDDEN
    assert cy_row[6] == "suppressed" and cy_row[9] == HIDDEN


def test_roles_without_aggregates_get_403_and_another_organization_sees_its_own(
    clinic: dict[str, Any], frontdesk_user: Any, compliance_user: Any, other_org_user: Any, client_for: Any
) -> None:
    url = reverse("analytics:satisfaction")
    for user in (frontdesk_user, compliance_user):
        assert client_for(user).get(url).status_code == 403
    page = client_for(other_org_user).get(url, {"start": "2026-06-01", "end": "2026-06-30"})
    assert page.status_code == 200 and "Dr Ada" not in page.content.decode()


def test_seed_demo_gives_the_satisfaction_page_its_history() -> None:
    """engagement/demo.py's "surveys" step: past surveys about completed visits, about four in ten
    answered, counted in the facts by the seed's final refresh."""
    import io

    from django.core.management import call_command

    from healthcrm.models import Organization
    from patients.models import Appointment

    call_command("seed_demo", "--patients", "40", stdout=io.StringIO())
    with organization_context(Organization.objects.get(slug="northside")):
        surveys = OutboundMessage.objects.filter(subject_type="survey", status="delivered")
        visits = set(Appointment.objects.filter(status="completed").values_list("pk", flat=True))
        assert surveys.count() > 30 and set(surveys.values_list("subject_id", flat=True)) <= visits
        answered = SurveyResponse.objects.count()
        assert 0.25 * surveys.count() < answered < 0.55 * surveys.count()  # drawn at 40 %
        assert SurveyFact.objects.count() == surveys.count()
        assert SurveyFact.objects.exclude(nps_group="none").count() == answered
