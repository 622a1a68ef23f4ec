"""The no-show model: trained on a generated history with a known pattern, refused on too little
history, its reasons, the extra reminder it triggers, and its badge on the patients pages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import time_machine
from django.urls import reverse

from analytics import risk
from analytics.models import AppointmentRisk, RiskModel
from engagement import services
from engagement.delivery.send import _subject_problem
from engagement.forms import RuleForm
from engagement.models import OutboundMessage
from healthcrm.tenancy import organization_context
from tests.analytics.history import Visit, patterned_history, write
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 16, 15, 0, tzinfo=UTC)  # 10:00 in Chicago, a Tuesday


@pytest.fixture(autouse=True)
def frozen() -> Iterator[datetime]:
    with time_machine.travel(NOW, tick=False):
        yield NOW


def _upcoming(org: Any, *, risky: bool) -> Any:
    """One booked visit in 3 days: risky = booked 120 days ahead, not confirmed, by a patient who
    missed 3 of 4 earlier visits; safe = booked the same day, confirmed, 4 of 4 attended."""
    patient = PatientFactory(phone_mobile="+13125550111" if risky else "+13125550122", preferred_channel="sms")
    past = [
        Visit(patient, NOW - timedelta(days=40 + 7 * k, hours=k), "no_show" if risky and k < 3 else "attended")
        for k in range(4)
    ]
    upcoming = Visit(
        patient,
        NOW + timedelta(days=3, hours=1 if risky else 2),
        "upcoming",
        lead_days=120 if risky else 0,
        confirmed=not risky,
    )
    return write(org, [*past, upcoming])[-1]


def test_the_model_learns_the_pattern_and_says_how_well_on_the_latest_visits(org_a) -> None:
    with organization_context(org_a):
        history, _ = patterned_history(org_a, now=NOW)
        model = risk.risk_train(now=NOW)
        status = risk.risk_status()
    no_shows = sum(v.outcome == "no_show" for v in history)
    assert model.status == "trained"
    # 1,500 due visits by start: the first 1,200 train, the latest 300 are held out.
    assert (model.n_train, model.n_test) == (1200, 300)
    assert model.n_train_no_shows + model.n_test_no_shows == no_shows
    assert model.test_from == history[1200].starts_at.date()
    # The real hold-out AUC of the fitted model, on visits it never saw.
    assert model.auc is not None and model.brier is not None
    assert model.auc >= 0.70, model.auc
    assert 0 < model.brier < 0.25
    # Calibration: 5 score bands (under 1,000 visits) of 60 visits each, every held-out visit once.
    assert [row["visits"] for row in model.calibration] == [60] * 5
    assert sum(row["no_shows"] for row in model.calibration) == model.n_test_no_shows
    scores = [row["mean_score"] for row in model.calibration]
    assert scores == sorted(scores)
    # The parameters are plain JSON, and they carry the pattern's signs.
    coefficients = dict(zip(model.feature_names, model.coefficients, strict=True))
    assert coefficients["lead:91+"] > coefficients["lead:0"]
    assert coefficients["prior:50+"] > coefficients["prior:0"]
    assert coefficients["confirmed:yes"] < coefficients["confirmed:no"]
    assert status["state"] == "trained" and status["auc"] == model.auc and status["n_test"] == 300
    assert f"AUC {model.auc:.2f}" in status["message"]


def test_too_little_history_means_no_model_no_scores_and_the_status_says_so(org_a, client_for, provider_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        # 100 due visits a day apart; no-shows at 0, 10, 20, 30, 40: in the first 80 (training), 5 no-shows.
        visits = [
            Visit(patient, NOW - timedelta(days=101 - k), "no_show" if k % 10 == 0 and k < 50 else "attended")
            for k in range(100)
        ]
        write(org_a, visits)
        upcoming = _upcoming(org_a, risky=True)
        model = risk.risk_train(now=NOW)
        scored = risk.risk_score(now=NOW)
        status = risk.risk_status()
        assert AppointmentRisk.objects.count() == 0
    # 100 visits + the risky patient's 4 earlier ones (3 no-shows): 104 due, 83 train with 8 no-shows.
    assert model.status == "too_little_history" and model.coefficients == [] and model.auc is None
    assert (model.n_train, model.n_train_no_shows) == (83, 8)
    assert scored == 0
    assert status["state"] == "too_little_history"
    assert status["message"].startswith("Too little history: 83 due visits and 8 no-shows")
    page = client_for(provider_user).get(reverse("patients:appointment_detail", args=[upcoming.pk]))
    assert page.status_code == 200 and b"no-show risk" not in page.content


def test_the_reasons_are_the_features_that_raise_the_log_odds_most() -> None:
    # A built model: two groups matter. Training means: half the visits booked 91+ days ahead, a
    # quarter by patients who missed half or more.
    fitted = risk.Fitted(
        names=["lead:0", "lead:91+", "prior:0", "prior:50+", "confirmed:no", "confirmed:yes"],
        coefficients=np.array([-0.5, 0.5, -0.3, 0.9, 0.2, -0.2]),
        intercept=-2.0,
        means=np.array([0.5, 0.5, 0.75, 0.25, 0.5, 0.5]),
    )
    # Columns per group (lead, prior, weekday, hour, type, age, confirmed, reminder); -1: not in the model.
    columns = np.array([[1, 3, -1, -1, -1, -1, 4, -1], [0, 2, -1, -1, -1, -1, 5, -1]])
    # Against the average: lead 0.5 - (-0.25 + 0.25) = 0.5; prior 0.9 - (-0.225 + 0.225) = 0.9;
    # confirmed 0.2 - 0 = 0.2. Strongest first. The second visit has nothing that raises it.
    first, second = risk.reasons_for(fitted, columns)
    assert [(code, round(value, 3)) for code, value in first] == [
        ("prior:50+", 0.9),
        ("lead:91+", 0.5),
        ("confirmed:no", 0.2),
    ]
    assert second == []
    assert risk.feature_label("prior:50+") == "Earlier visits missed: half or more"
    assert risk.feature_label("lead:91+") == "Booked: more than 90 days ahead"


def test_a_risky_visit_scores_high_with_its_reasons_and_a_safe_one_low(org_a) -> None:
    with organization_context(org_a):
        patterned_history(org_a, now=NOW)
        risky, safe = _upcoming(org_a, risky=True), _upcoming(org_a, risky=False)
        risk.risk_train(now=NOW)
        assert risk.risk_score(now=NOW) == 2
        high, low = AppointmentRisk.objects.get(appointment=risky), AppointmentRisk.objects.get(appointment=safe)
        badges = risk.appointment_badges([risky.pk, safe.pk])
    assert high.score >= 0.30 > low.score
    codes = [reason["code"] for reason in high.reasons]
    assert "lead:91+" in codes and "prior:50+" in codes and len(codes) <= 3
    assert badges[risky.pk]["level"] == "high" and badges[risky.pk]["flag"]
    assert badges[risky.pk]["label"] == f"High no-show risk {round(high.score * 100)} %"
    assert badges[safe.pk]["flag"] is False


def _reminder_rule(**params: Any) -> Any:
    return services.rule_save(
        name="Reminders",
        kind="appointment_reminder",
        template_key="appointment_reminder",
        offsets_hours=[24],
        params=params,
    )


def test_the_extra_reminder_goes_once_to_a_high_risk_visit_and_not_to_a_low_one(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        patterned_history(org_a, now=NOW)
        risky, safe = _upcoming(org_a, risky=True), _upcoming(org_a, risky=False)
        rule = _reminder_rule(extra_when_risk=0.3, extra_offset_hours=48)
        risk.risk_train(now=NOW)
        risk.risk_score(now=NOW)
        risk.risk_score(now=NOW + timedelta(hours=1))  # scored again: nothing new
        extra = list(OutboundMessage.objects.filter(rule=rule, slot__startswith="risk"))
        assert len(extra) == 1
        message = extra[0]
        assert message.subject_id == risky.pk and message.slot == services.risk_reminder_slot(48, risky.starts_at)
        assert message.slot == f"risk48h@{risky.starts_at:%Y%m%dT%H%M}"
        # 48 h before a start 3 days away, inside the patient's window; it expires at the start.
        assert message.due_at == risky.starts_at - timedelta(hours=48) and message.expires_at == risky.starts_at
        assert message.channel == "sms" and message.is_urgent
        assert not OutboundMessage.objects.filter(subject_id=safe.pk).exists()
        # At send time the slot is recognised as this start's (not "rescheduled").
        assert _subject_problem(message, NOW) == ""
        risky.starts_at += timedelta(days=1)
        risky.ends_at += timedelta(days=1)
        risky.save()
        assert _subject_problem(message, NOW) == "The appointment was rescheduled."


def test_no_extra_reminder_without_the_option_or_without_consent(org_a) -> None:
    configure(org_a)
    with organization_context(org_a):
        patterned_history(org_a, now=NOW)
        risky = _upcoming(org_a, risky=True)
        plain = _reminder_rule()
        risk.risk_train(now=NOW)
        risk.risk_score(now=NOW)
        assert AppointmentRisk.objects.get(appointment=risky).score >= 0.3  # high enough for the option
        assert not OutboundMessage.objects.filter(slot__startswith="risk").exists()
        for channel in ("sms", "email"):
            services.consent_set(patient=risky.patient, channel=channel, status="opted_out", source="staff")
        services.rule_save(rule=plain, params={"extra_when_risk": 0.3})
        risk.risk_score(now=NOW)
        assert not OutboundMessage.objects.filter(slot__startswith="risk").exists()


RISK = "appointment_reminder-extra_when_risk"
OFFSET = "appointment_reminder-extra_offset_hours"


def _rule_form(**options: str) -> RuleForm:
    data = {"name": "R", "kind": "appointment_reminder", "template_key": "appointment_reminder", "offsets": "24"}
    return RuleForm({**data, **options}, template_keys=["appointment_reminder"])


@pytest.mark.parametrize(
    ("options", "field", "error"),
    [
        ({RISK: "150"}, RISK, "less than or equal to 99"),
        ({RISK: "high"}, RISK, "Enter a whole number"),
        ({RISK: "30", OFFSET: "0"}, OFFSET, "greater than or equal to 1"),
        ({OFFSET: "48"}, RISK, "extra_offset_hours needs the risk"),
    ],
)
def test_the_rule_form_refuses_bad_risk_options(options: dict[str, str], field: str, error: str) -> None:
    form = _rule_form(**options)
    assert not form.is_valid()
    assert any(error in message for message in form.errors[field]), form.errors


def test_the_rule_form_takes_good_risk_options() -> None:
    form = _rule_form(**{RISK: "30", OFFSET: "48"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["options"] == {"extra_when_risk": 0.3, "extra_offset_hours": 48}


def test_the_badge_shows_on_the_calendar_and_the_appointment_page(
    org_a, client_for, provider_user, other_org_user
) -> None:
    with organization_context(org_a):
        patterned_history(org_a, now=NOW)
        risky, safe = _upcoming(org_a, risky=True), _upcoming(org_a, risky=False)
        risk.risk_train(now=NOW)
        risk.risk_score(now=NOW)
        high = AppointmentRisk.objects.get(appointment=risky)
    label = f"High no-show risk {round(high.score * 100)} %"
    client = client_for(provider_user)
    calendar = client.get(reverse("patients:appointment_calendar"), {"date": risky.starts_at.date().isoformat()})
    assert calendar.status_code == 200
    text = calendar.content.decode()
    # Only the flagged visit has a badge on the calendar, with its reasons.
    assert text.count('data-testid="appointment-badge"') == 1
    assert label in text and "Booked: more than 90 days ahead" in text
    detail = client.get(reverse("patients:appointment_detail", args=[risky.pk])).content.decode()
    assert label in detail and "Earlier visits missed: half or more" in detail
    # The safe visit's page shows its (low) score; another organization sees neither page.
    assert "Low no-show risk" in client.get(reverse("patients:appointment_detail", args=[safe.pk])).content.decode()
    other = client_for(other_org_user).get(reverse("patients:appointment_detail", args=[risky.pk]))
    assert other.status_code == 404


def fake_badges(appointment_ids: list[int]) -> dict[int, dict[str, Any]]:
    return {
        pk: {"kind": "test", "level": "high", "label": f"Test badge {pk}", "reasons": [], "flag": True}
        for pk in appointment_ids
    }


def test_the_calendar_takes_its_badges_from_the_setting(org_a, client_for, nurse_user, settings) -> None:
    with organization_context(org_a):
        (visit,) = write(org_a, [Visit(PatientFactory(), NOW + timedelta(days=1), "upcoming")])
    url = reverse("patients:appointment_calendar")
    query = {"date": visit.starts_at.date().isoformat()}
    settings.PATIENTS_APPOINTMENT_BADGES = ["tests.analytics.test_risk.fake_badges"]
    assert f"Test badge {visit.pk}" in client_for(nurse_user).get(url, query).content.decode()
    settings.PATIENTS_APPOINTMENT_BADGES = []
    assert "appointment-badge" not in client_for(nurse_user).get(url, query).content.decode()


def test_patients_never_imports_analytics() -> None:
    """The badge comes through the setting: no module of patients names analytics."""
    root = Path(__file__).resolve().parents[2] / "patients"
    offenders = [
        str(path)
        for path in root.rglob("*.py")
        if "import analytics" in path.read_text() or "from analytics" in path.read_text()
    ]
    assert offenders == []


def test_training_then_scoring_tasks_run_per_organization(org_a, org_b) -> None:
    from analytics import tasks

    with organization_context(org_a):
        patterned_history(org_a, now=NOW, visits=400, patients=60)
        risky = _upcoming(org_a, risky=True)
    tasks.risk_train_task(org_a.pk)
    tasks.risk_train_task(org_b.pk)
    with organization_context(org_a):
        assert RiskModel.objects.get().status == "trained"
        assert AppointmentRisk.objects.filter(appointment=risky).exists()
    with organization_context(org_b):
        # Organization B has no history: a row saying so, and nothing of A's.
        assert RiskModel.objects.get().status == "too_little_history"
        assert AppointmentRisk.objects.count() == 0


def test_the_risk_page_shows_the_model_figures_to_analysts_and_no_visit(
    org_a, client_for, analyst_user, frontdesk_user, other_org_user
) -> None:
    url = reverse("analytics:risk")
    client = client_for(analyst_user)
    assert "No model has been trained yet." in client.get(url).content.decode()
    with organization_context(org_a):
        patterned_history(org_a, now=NOW)
        risky = _upcoming(org_a, risky=True)
        model = risk.risk_train(now=NOW)
        risk.risk_score(now=NOW)
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert f'data-testid="risk-auc">{model.auc:.2f}<' in text
    assert f'data-testid="risk-brier">{model.brier:.3f}<' in text
    assert "Booked: more than 90 days ahead" in text  # a coefficient's label
    # 1,500 + the risky patient's 4 earlier visits = 1,504 due: the latest 301 held out, in five
    # bands of 61, 60, 60, 60, 60. No-show and attended counts of 1 to 10 are hidden; the CSV has the
    # page's cells.
    csv = client.get(url, {"export": "calibration"}).content.decode().splitlines()
    assert csv[0].startswith("Score band,No-shows,Attended,Total")
    assert [line.split(",")[3] for line in csv[1:]] == ["61", "60", "60", "60", "60", "301"]
    for line in csv[1:]:
        no_shows = line.split(",")[1]
        assert no_shows in ("<11", "hidden") or not 1 <= int(no_shows) <= 10
    # Model figures only: no patient, no appointment id.
    assert str(risky.patient.family_name) not in text and f"/appointments/{risky.pk}/" not in text
    assert client_for(frontdesk_user).get(url).status_code == 403
    other = client_for(other_org_user).get(url).content.decode()
    assert "No model has been trained yet." in other


def test_the_risk_page_says_when_there_is_too_little_history(org_a, client_for, analyst_user) -> None:
    with organization_context(org_a):
        patient = PatientFactory()
        # 50 due visits, 10 no-shows: 40 train (8 no-shows at k = 0, 5, ..., 35).
        write(
            org_a,
            [Visit(patient, NOW - timedelta(days=60 - k), "no_show" if k % 5 == 0 else "attended") for k in range(50)],
        )
        risk.risk_train(now=NOW)
    text = client_for(analyst_user).get(reverse("analytics:risk")).content.decode()
    assert "Too little history: 40 due visits and 8 no-shows" in text
    assert "risk-auc" not in text


def test_reminder_slots_match_their_start_with_or_without_the_risk_prefix() -> None:
    start = datetime(2026, 6, 19, 16, 0, tzinfo=UTC)
    assert services.reminder_slot_matches("48h@20260619T1600", start)
    assert services.reminder_slot_matches("risk48h@20260619T1600", start)
    assert not services.reminder_slot_matches("risk48h@20260619T1600", start + timedelta(days=1))  # rescheduled
    assert not services.reminder_slot_matches("follow-up", start)
    assert not services.reminder_slot_matches("riskxh@20260619T1600", start)
