"""The education library (#15 item 1) and the engagement view (item 3): bodies sanitised, items sent
once per patient and item by the education rule when a diagnosis, a medication or a care plan is
added, in the patient's language (with fallback), through the outbox (consent, quiet hours), with a
signed expiring link whose page records the first open once; the staff pages' access; reach figures."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from engagement import delivery, links, selectors, services
from engagement.education import selectors as education_selectors
from engagement.education.models import EducationItem, EducationSend
from engagement.education.services import education_item_save, education_version_save
from engagement.models import EngagementEvent, OutboundMessage, Rule
from healthcrm.tenancy import organization_context
from patients.services import condition_add, medication_add
from tests.engagement.conftest import configure
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
HYPERTENSION = "38341003"
LISINOPRIL = "29046"
KEY = "e" * 22


def _library(organization: Any) -> dict[str, EducationItem]:
    """Two items: hypertension (en, es; also lisinopril and the hypertension care plan), asthma (en)."""
    with organization_context(organization):
        bp = education_item_save(
            key="bp-what-to-expect",
            format="article",
            reading_level="easy",
            condition_codes=[HYPERTENSION, "I10"],
            medication_codes=[LISINOPRIL],
            care_plan_templates=["hypertension"],
        )
        education_version_save(
            item=bp, language="en", title="Living with high blood pressure", body="<p>Walk daily.</p>"
        )
        education_version_save(
            item=bp, language="es", title="Vivir con presión alta", body="<p>Camine todos los días.</p>"
        )
        asthma = education_item_save(key="asthma-basics", format="video", reading_level="standard")
        education_version_save(
            item=asthma, language="en", title="Using your inhaler", video_url="https://video.example/inhaler"
        )
        Rule.objects.create(name="Education", kind="education", template_key="education")
    return {"bp": bp, "asthma": asthma}


@pytest.fixture
def library(org_a: Any) -> dict[str, EducationItem]:
    configure(org_a)
    return _library(org_a)


def _patient(organization: Any, **fields: Any) -> Any:
    with organization_context(organization):
        values = {
            "given_name": "Nadia",
            "family_name": "Orlowsky",
            "preferred_channel": "sms",
            "phone_mobile": "+13125550142",
            "timezone": "America/Chicago",
            **fields,
        }
        return PatientFactory(**values)


def _sends(organization: Any) -> list[EducationSend]:
    with organization_context(organization):
        return list(EducationSend.objects.select_related("message__rule", "item", "sent_by").order_by("pk"))


def _diagnose(organization: Any, patient: Any, capture: Any, code: str = HYPERTENSION) -> None:
    with capture(execute=True):
        with organization_context(organization):
            condition_add(patient=patient, code=code, display="Essential hypertension")


# -- Sanitising ------------------------------------------------------------------------------------


def test_a_body_is_stored_without_scripts_event_handlers_or_javascript_links(org_a) -> None:
    with organization_context(org_a):
        item = education_item_save(key="x", format="article", reading_level="easy")
        version = education_version_save(
            item=item,
            language="en",
            title="Salt",
            body='<p onclick="steal()">Less <b>salt</b><script>alert(1)</script></p>'
            '<a href="javascript:alert(2)">here</a><img src=x onerror="alert(3)"><a href="https://ok.example">ok</a>',
        )
        stored = EducationItem.objects.get(pk=item.pk).versions.get().body
    assert stored == version.body
    for dangerous in ("script", "alert", "onclick", "onerror", "javascript:", "<img"):
        assert dangerous not in stored
    assert "<p>Less <b>salt</b></p>" in stored and 'href="https://ok.example"' in stored


def test_a_video_needs_an_https_link(org_a) -> None:
    from django.core.exceptions import ValidationError

    with organization_context(org_a):
        item = education_item_save(key="v", format="video", reading_level="easy")
        with pytest.raises(ValidationError, match="https"):
            education_version_save(item=item, language="en", title="Video", video_url="http://video.example/x")


# -- Rules: once per patient and item, in the patient's language ------------------------------------


def test_a_diagnosis_added_twice_sends_its_education_once(
    org_a, library, daytime, django_capture_on_commit_callbacks
) -> None:
    patient = _patient(org_a)
    _diagnose(org_a, patient, django_capture_on_commit_callbacks)
    _diagnose(org_a, patient, django_capture_on_commit_callbacks)
    # A medication the same item suits does not send it again either.
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            medication_add(patient=patient, name="Lisinopril 10 mg", code=LISINOPRIL)
    [send] = _sends(org_a)
    assert send.item == library["bp"] and send.trigger == "condition" and send.trigger_code == HYPERTENSION
    with organization_context(org_a):
        [message] = OutboundMessage.objects.select_related("rule").filter(subject_type="education")
    assert send.message == message and message.rule.kind == "education" and message.subject_id == library["bp"].pk
    # Another patient with the same diagnosis gets their own.
    other = _patient(org_a, phone_mobile="+13125550143")
    _diagnose(org_a, other, django_capture_on_commit_callbacks)
    assert len(_sends(org_a)) == 2


def test_icd10_sub_codes_medications_and_care_plans_trigger_the_items_that_suit_them(
    org_a, library, daytime, nurse_user, django_capture_on_commit_callbacks
) -> None:
    from patients.care.defaults import care_plan_templates_install
    from patients.care.services import care_plan_start
    from patients.models import CarePlanTemplate

    icd = _patient(org_a, phone_mobile="+13125550144")
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            condition_add(
                patient=icd, code="I10.0", display="Hypertension", code_system="http://hl7.org/fhir/sid/icd-10-cm"
            )
    on_drug = _patient(org_a, phone_mobile="+13125550145")
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            medication_add(patient=on_drug, name="Lisinopril", code=LISINOPRIL)
    on_plan = _patient(org_a, phone_mobile="+13125550146")
    with organization_context(org_a):
        care_plan_templates_install()
        template = CarePlanTemplate.objects.get(code="hypertension")
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            care_plan_start(patient=on_plan, template=template, actor=nurse_user)
    # Not suited: an unrelated diagnosis, and "I100" is not a sub-code of I10.
    unrelated = _patient(org_a, phone_mobile="+13125550147")
    _diagnose(org_a, unrelated, django_capture_on_commit_callbacks, code="I100")
    sent = {(s.patient_id, s.trigger) for s in _sends(org_a)}
    assert sent == {(icd.pk, "condition"), (on_drug.pk, "medication"), (on_plan.pk, "care_plan")}


def test_no_active_education_rule_sends_nothing(org_a, library, daytime, django_capture_on_commit_callbacks) -> None:
    with organization_context(org_a):
        Rule.objects.filter(kind="education").update(is_active=False)
    _diagnose(org_a, _patient(org_a), django_capture_on_commit_callbacks)
    assert _sends(org_a) == []


@pytest.mark.parametrize(
    ("language", "sent_in"), [("es", "es"), ("es-MX", "es"), ("en-US", "en"), ("fr", "en"), ("", "en")]
)
def test_the_version_follows_the_patients_language_with_fallback(
    org_a, library, daytime, django_capture_on_commit_callbacks, language, sent_in
) -> None:
    patient = _patient(org_a, preferred_language=language)
    _diagnose(org_a, patient, django_capture_on_commit_callbacks)
    [send] = _sends(org_a)
    assert send.language == sent_in


def test_an_item_in_one_language_only_falls_back_to_it(org_a) -> None:
    with organization_context(org_a):
        item = education_item_save(key="only-es", format="article", reading_level="easy")
        education_version_save(item=item, language="es", title="Solo en español", body="<p>Hola</p>")
        assert education_selectors.version_for(item, "en").language == "es"


# -- Consent and quiet hours ------------------------------------------------------------------------


def test_an_opted_out_channel_is_not_used_and_an_unreachable_patient_gets_nothing_recorded(
    org_a, library, daytime, django_capture_on_commit_callbacks
) -> None:
    by_email = _patient(org_a, email="nadia@example.org")
    unreachable = _patient(org_a, phone_mobile="+13125550148", email="")
    with organization_context(org_a):
        services.consent_set(patient=by_email, channel="sms", status="opted_out", source="staff")
        services.consent_set(patient=unreachable, channel="sms", status="opted_out", source="staff")
    _diagnose(org_a, by_email, django_capture_on_commit_callbacks)
    _diagnose(org_a, unreachable, django_capture_on_commit_callbacks)
    [send] = _sends(org_a)
    assert send.patient_id == by_email.pk and send.message.channel == "email"
    # Once reachable again, a later trigger reaches them (nothing was recorded as sent).
    with organization_context(org_a):
        services.consent_set(patient=unreachable, channel="sms", status="opted_in", source="staff")
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            medication_add(patient=unreachable, name="Lisinopril", code=LISINOPRIL)
    assert {s.patient_id for s in _sends(org_a)} == {by_email.pk, unreachable.pk}


def test_a_late_evening_diagnosis_is_sent_in_the_patients_morning(
    org_a, library, fake_twilio, time_machine, django_capture_on_commit_callbacks
) -> None:
    time_machine.move_to(datetime(2026, 11, 24, 22, 30, tzinfo=CHICAGO).astimezone(UTC), tick=False)
    _diagnose(org_a, _patient(org_a), django_capture_on_commit_callbacks)
    [send] = _sends(org_a)
    morning = datetime(2026, 11, 25, 8, 0, tzinfo=CHICAGO)
    assert send.message.next_attempt_at == morning
    assert delivery.message_send(org_a, send.message.pk) == "skipped" and fake_twilio.accepted == []
    time_machine.move_to(morning.astimezone(UTC), tick=False)
    assert delivery.message_send(org_a, send.message.pk) == "sent"


# -- The message, its link and the patient page -----------------------------------------------------


def _sent(org_a: Any, capture: Any, fake_twilio: Any, **patient: Any) -> tuple[EducationSend, str]:
    _diagnose(org_a, _patient(org_a, **patient), capture)
    [send] = _sends(org_a)
    assert delivery.message_send(org_a, send.message.pk) == "sent"
    [sms] = fake_twilio.accepted
    path = sms.body[sms.body.index("/engagement/l/") :].split()[0]
    return send, path


def _events(org_a: Any) -> list[EngagementEvent]:
    with organization_context(org_a):
        return list(EngagementEvent.objects.all())


def test_the_sms_carries_a_link_and_no_title_or_condition(
    org_a, library, fake_twilio, daytime, django_capture_on_commit_callbacks
) -> None:
    _, path = _sent(org_a, django_capture_on_commit_callbacks, fake_twilio)
    [sms] = fake_twilio.accepted
    assert sms.body.startswith("North Clinic: Nadia,") and path.startswith("/engagement/l/")
    assert "blood pressure" not in sms.body.lower() and "hypertension" not in sms.body.lower()


def test_opening_the_link_records_the_first_open_once_and_counts_later_opens(
    client, org_a, library, fake_twilio, time_machine, django_capture_on_commit_callbacks
) -> None:
    time_machine.move_to(datetime(2026, 11, 24, 21, 0, tzinfo=UTC), tick=False)
    send, path = _sent(org_a, django_capture_on_commit_callbacks, fake_twilio, preferred_language="es")
    first = timezone.now()
    page = client.get(path)
    assert page.status_code == 200
    text = page.content.decode()
    assert "Vivir con presión alta" in text and "Camine todos los días." in text and 'lang="es"' in text
    assert "Nadia" not in text and "Orlowsky" not in text  # no PHI on the page
    time_machine.move_to(first + timedelta(hours=3), tick=False)
    assert client.get(path).status_code == 200
    [event] = _events(org_a)
    assert (event.kind, event.message_id, event.first_at, event.count) == ("opened", send.message_id, first, 2)
    assert event.last_at == first + timedelta(hours=3)


def test_a_link_previewer_opens_nothing(
    client, org_a, library, fake_twilio, daytime, django_capture_on_commit_callbacks
) -> None:
    _, path = _sent(org_a, django_capture_on_commit_callbacks, fake_twilio)
    assert client.get(path, headers={"User-Agent": "WhatsApp/2.23"}).status_code == 200
    assert client.head(path).status_code == 200
    assert _events(org_a) == []


def test_an_expired_or_tampered_link_shows_a_polite_page_and_writes_nothing(
    client, org_a, library, fake_twilio, daytime, settings, django_capture_on_commit_callbacks
) -> None:
    send, path = _sent(org_a, django_capture_on_commit_callbacks, fake_twilio)
    old = links.make_token(
        organization_id=org_a.pk,
        message_id=send.message_id,
        action="education",
        now=timezone.now() - timedelta(seconds=settings.ENGAGEMENT_LINK_MAX_AGE + 60),
    )
    expired = client.get(f"/engagement/l/{old}/")
    assert expired.status_code == 410 and b"this link has expired" in expired.content
    assert b"presi" not in expired.content and b"blood pressure" not in expired.content
    token = path.split("/")[3]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    response = client.get(f"/engagement/l/{tampered}/")
    assert response.status_code == 404 and b"blood pressure" not in response.content
    # A token of another action for the same message cannot be turned into an education page.
    with pytest.raises(signing.BadSignature):
        links.read_token(tampered)
    assert _events(org_a) == []


def test_an_education_link_to_another_organizations_message_finds_nothing(
    client, org_a, org_b, library, fake_twilio, daytime, django_capture_on_commit_callbacks
) -> None:
    send, _ = _sent(org_a, django_capture_on_commit_callbacks, fake_twilio)
    forged = links.make_token(organization_id=org_b.pk, message_id=send.message_id, action="education")
    assert client.get(f"/engagement/l/{forged}/").status_code == 404
    assert _events(org_a) == []


# -- Staff pages: library, preview, the record's Engagement tab --------------------------------------


def test_the_library_and_preview_for_clinical_roles_404_for_another_organization_403_for_others(
    client_for, nurse_user, frontdesk_user, other_org_user, library
) -> None:
    bp = library["bp"]
    page = client_for(nurse_user).get(reverse("engagement:education_library")).content.decode()
    assert "Living with high blood pressure" in page and "Using your inhaler" in page
    preview = client_for(nurse_user).get(reverse("engagement:education_item", args=[bp.pk]), {"language": "es"})
    assert preview.status_code == 200 and "Camine todos los días." in preview.content.decode()
    fallback = client_for(nurse_user).get(reverse("engagement:education_item", args=[bp.pk]), {"language": "zz"})
    assert "Walk daily." in fallback.content.decode()
    assert client_for(frontdesk_user).get(reverse("engagement:education_library")).status_code == 403
    assert client_for(other_org_user).get(reverse("engagement:education_item", args=[bp.pk])).status_code == 404


def test_sending_from_the_record_goes_once_per_form_and_shows_on_the_engagement_tab(
    client_for, nurse_user, org_a, library, daytime, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from engagement import tasks

    queued: list[tuple[Any, ...]] = []
    monkeypatch.setattr(tasks.outbox_send_task, "delay", lambda *args: queued.append(args))
    patient = _patient(org_a)
    client = client_for(nurse_user)
    url = reverse("engagement:patient_engagement", args=[patient.pk])
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(url, {"item": library["asthma"].pk, "key": KEY})
        assert response.status_code == 302
    [send] = _sends(org_a)
    assert send.trigger == "staff" and send.sent_by == nurse_user and len(queued) == 1
    with organization_context(org_a):
        OutboundMessage.objects.filter(pk=send.message_id).update(status="sent", sent_at=timezone.now())
        services.engagement_event_record(message=send.message, kind="opened", now=timezone.now())
    page = client.get(url).content.decode()
    assert 'aria-current="page">Engagement<' in page and "Using your inhaler" in page
    assert page.count('data-testid="engagement-row"') == 1
    # The timeline names what the patient opened (clinical users).
    timeline = client.get(reverse("patients:timeline", args=[patient.pk])).content.decode()
    assert "Opened by the patient: Using your inhaler" in timeline


def test_the_engagement_tab_is_404_for_another_organization_and_403_without_the_clinical_rights(
    client_for, other_org_user, frontdesk_user, analyst_user, org_a, library
) -> None:
    patient = _patient(org_a)
    url = reverse("engagement:patient_engagement", args=[patient.pk])
    assert client_for(other_org_user).get(url).status_code == 404
    assert client_for(other_org_user).post(url, {"item": library["bp"].pk, "key": KEY}).status_code == 404
    assert client_for(frontdesk_user).get(url).status_code == 403
    assert client_for(frontdesk_user).post(url, {"item": library["bp"].pk, "key": KEY}).status_code == 403
    assert client_for(analyst_user).get(url).status_code in (403, 404)
    assert _sends(org_a) == []


def test_a_send_to_an_unreachable_patient_is_refused_with_the_reason(
    client_for, nurse_user, org_a, library, daytime
) -> None:
    patient = _patient(org_a, email="")
    with organization_context(org_a):
        services.consent_set(patient=patient, channel="sms", status="opted_out", source="staff")
    url = reverse("engagement:patient_engagement", args=[patient.pk])
    response = client_for(nurse_user).post(url, {"item": library["bp"].pk, "key": KEY})
    assert response.status_code == 400 and "cannot be reached" in response.content.decode()
    assert _sends(org_a) == []


def test_another_organizations_item_cannot_be_sent(client_for, nurse_user, org_a, org_b, library) -> None:
    configure(org_b)
    other_items = _library(org_b)
    patient = _patient(org_a)
    url = reverse("engagement:patient_engagement", args=[patient.pk])
    response = client_for(nurse_user).post(url, {"item": other_items["bp"].pk, "key": KEY})
    assert response.status_code == 400 and _sends(org_a) == []


# -- Reach, hand-counted ----------------------------------------------------------------------------


def _sent_send(org: Any, item: Any, patient: Any, *, language: str, trigger: str, code: str, at: datetime) -> Any:
    with organization_context(org):
        message = services.outbox_enqueue(
            patient=patient,
            subject_type="education",
            subject_id=item.pk,
            slot=f"staff:{patient.pk}-{item.pk}-{language}",
            due_at=at,
            channel="sms",
        )
        OutboundMessage.objects.filter(pk=message.pk).update(status="delivered", sent_at=at)
        message.refresh_from_db()
        EducationSend.objects.create(
            patient=patient, item=item, language=language, trigger=trigger, trigger_code=code, message=message
        )
    return message


def test_reach_counts_sent_and_opened_by_content_condition_and_language(org_a, library) -> None:
    day = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
    bp, asthma = library["bp"], library["asthma"]
    patients = [_patient(org_a, phone_mobile=f"+131255502{n:02d}") for n in range(6)]
    m1 = _sent_send(org_a, bp, patients[0], language="en", trigger="condition", code=HYPERTENSION, at=day)
    m2 = _sent_send(org_a, bp, patients[1], language="es", trigger="condition", code="I10", at=day)
    _sent_send(org_a, bp, patients[2], language="es", trigger="medication", code=LISINOPRIL, at=day)
    m4 = _sent_send(org_a, asthma, patients[3], language="en", trigger="staff", code="", at=day)
    _sent_send(org_a, asthma, patients[4], language="en", trigger="staff", code="", at=day)
    # Outside the period: not counted.
    _sent_send(org_a, asthma, patients[5], language="en", trigger="staff", code="", at=day - timedelta(days=40))
    with organization_context(org_a):
        for message in (m1, m2, m4):
            services.engagement_event_record(message=message, kind="opened", now=day)
        services.engagement_event_record(message=m1, kind="opened", now=day + timedelta(hours=1))  # a later open
        rows = selectors.education_reach(start=day - timedelta(days=1), end=day + timedelta(days=1))
        completion = selectors.engagement_completion(start=day - timedelta(days=1), end=day + timedelta(days=1))
    got = {(r.item_key, r.language, r.condition_code): (r.sent, r.opened) for r in rows}
    assert got == {
        ("bp-what-to-expect", "en", HYPERTENSION): (1, 1),
        ("bp-what-to-expect", "es", "I10"): (1, 1),
        ("bp-what-to-expect", "es", HYPERTENSION): (1, 0),  # a medication send: the item's first condition
        ("asthma-basics", "en", ""): (2, 1),
    }
    [education] = [c for c in completion if c.subject_type == "education"]
    assert (education.sent, education.opened, education.answered) == (5, 3, 0)

    from analytics.engagement import reach_table

    by_condition = reach_table(rows, "condition")
    assert by_condition.values[("Hypertension", "opened")] == 2
    assert by_condition.values[("Hypertension", "not_opened")] == 1
    assert by_condition.values[("No condition", "opened")] == 1
    by_language = reach_table(rows, "language")
    assert by_language.values[("es", "opened")] + by_language.values[("es", "not_opened")] == 2


def test_the_engagement_analytics_page_shows_reach_suppressed_and_refuses_other_roles(
    client_for, analyst_user, frontdesk_user, org_a, library
) -> None:
    day = timezone.now() - timedelta(days=1)
    patient = _patient(org_a)
    message = _sent_send(org_a, library["bp"], patient, language="en", trigger="condition", code="I10", at=day)
    with organization_context(org_a):
        services.engagement_event_record(message=message, kind="opened", now=day)
    response = client_for(analyst_user).get(reverse("analytics:engagement"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Education reach by content" in page and "Living with high blood pressure" in page
    assert "&lt;11" in page  # one send: a small cell
    assert "No questionnaires are sent yet." in page
    assert client_for(frontdesk_user).get(reverse("analytics:engagement")).status_code == 403
