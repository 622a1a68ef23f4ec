"""Consent as policy (#13 item 3): consents per kind (treatment, SMS, email, marketing and
education campaigns, research, data sharing with a named EHR connection) with source, date, expiry
and evidence, a full history, and the send-time check per kind (an expired consent counts as none)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from engagement import delivery, services
from engagement.models import Consent, ConsentChange, ConversationMessage, OutboundMessage, Rule
from healthcrm.tenancy import organization_context
from integrations.fhir.sharing import party_key
from integrations.models import FhirConnection
from patients.documents.services import document_upload
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.fixture
def patient(org_a: Any, outreach_a: Any) -> Any:
    with organization_context(org_a):
        return PatientFactory(
            given_name="Rosa", phone_mobile="+13125550101", preferred_channel="sms", timezone="America/Chicago"
        )


def _rule(kind: str) -> Rule:
    return Rule.objects.create(name=f"A {kind} rule", kind=kind, template_key="lab_results")


def _message(patient: Any, *, kind: str | None = None, slot: str = "s1") -> Any:
    """An outbox row due now on SMS, from a rule of `kind` (None: a notice without a rule)."""
    return services.outbox_enqueue(
        patient=patient,
        subject_type="observation",
        subject_id=1,
        slot=slot,
        due_at=timezone.now(),
        template_key="lab_results",
        channel="sms",
        urgent=True,
        rule=_rule(kind) if kind else None,
    )


def _send(org: Any, message: Any) -> tuple[str, str]:
    delivery.message_send(org, message.pk)
    with organization_context(org):
        row = OutboundMessage.objects.get(pk=message.pk)
    return row.status, row.status_reason


def _grant(patient: Any, kind: str, *, expires_at: datetime | None = None, status: str = "opted_in") -> Consent:
    return services.consent_set(patient=patient, kind=kind, status=status, source="staff", expires_at=expires_at)


# -- The record and its history -----------------------------------------------------------------


def test_a_consent_keeps_kind_party_expiry_and_evidence_and_every_change(org_a, patient, nurse_user) -> None:
    with organization_context(org_a):
        connection = FhirConnection.objects.create(name="County EHR", base_url="https://ehr.example/fhir")
        form = document_upload(patient=patient, title="Sharing consent", kind="consent_form", data=PDF)
        until = timezone.now() + timedelta(days=365)
        services.consent_set(
            patient=patient,
            kind="data_sharing",
            party=party_key(connection),
            status="opted_in",
            source="signed_form",
            expires_at=until,
            evidence_document=form,
            actor=nurse_user,
        )
        services.consent_set(
            patient=patient, kind="data_sharing", party=party_key(connection), status="opted_out", source="staff"
        )
        current = Consent.objects.get(kind="data_sharing")
        history = list(ConsentChange.objects.order_by("id"))
    # The current record is the withdrawal (no expiry, no evidence carried over) ...
    assert (current.status, current.expires_at, current.evidence_document_id) == ("opted_out", None, None)
    # ... and the history keeps the grant as it was given.
    assert [(c.kind, c.party, c.status, c.source) for c in history] == [
        ("data_sharing", party_key(connection), "opted_in", "signed_form"),
        ("data_sharing", party_key(connection), "opted_out", "staff"),
    ]
    assert history[0].expires_at == until and history[0].evidence_document_id == form.pk
    assert history[0].actor_label == nurse_user.username


def test_kinds_are_separate_records_and_a_channel_keeps_its_old_name(org_a, patient) -> None:
    with organization_context(org_a):
        _grant(patient, "sms")
        _grant(patient, "marketing")
        _grant(patient, "research", status="opted_out")
        rows = {c.kind: c for c in Consent.objects.all()}
    assert set(rows) == {"sms", "marketing", "research"}
    # Code written before kinds existed reads `channel`: the channel kinds answer it, the others "".
    assert (rows["sms"].channel, rows["marketing"].channel) == ("sms", "")


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"kind": "data_sharing"}, "__all__"),  # sharing with no one
        ({"kind": "research", "party": "fhir-connection:1"}, "__all__"),  # a party on a kind without one
        ({"kind": "sms", "status": "opted_out", "expires_at": "soon"}, "__all__"),  # an opt-out does not lapse
        ({"kind": "astrology"}, "kind"),
    ],
)
def test_the_rules_of_a_consent_are_refused_by_the_service(org_a, patient, values, field) -> None:
    data: dict[str, Any] = {"status": "opted_in", "source": "staff", **values}
    if data.get("expires_at") == "soon":
        data["expires_at"] = timezone.now() + timedelta(days=1)
    with organization_context(org_a), pytest.raises(ValidationError) as caught:
        services.consent_set(patient=patient, **data)
    assert field in caught.value.message_dict
    with organization_context(org_a):
        assert not Consent.objects.exists() and not ConsentChange.objects.exists()


def test_evidence_must_be_the_patients_own(org_a, patient) -> None:
    with organization_context(org_a):
        someone_else = PatientFactory()
        their_form = document_upload(patient=someone_else, title="Form", kind="consent_form", data=PDF)
        their_text = ConversationMessage.objects.create(
            patient=someone_else, direction="in", phone="+13125550199", body="YES"
        )
        staff_reply = ConversationMessage.objects.create(
            patient=patient, direction="out", phone="+13125550101", body="Hi"
        )
        for evidence in ({"evidence_document": their_form}, {"evidence_message": their_text}):
            with pytest.raises(ValidationError):
                services.consent_set(patient=patient, kind="research", status="opted_in", source="staff", **evidence)
        with pytest.raises(ValidationError):
            services.consent_set(
                patient=patient, kind="research", status="opted_in", source="staff", evidence_message=staff_reply
            )
        mine = ConversationMessage.objects.create(patient=patient, direction="in", phone="+13125550101", body="YES")
        consent = services.consent_set(
            patient=patient, kind="research", status="opted_in", source="sms_keyword", evidence_message=mine
        )
    assert consent.evidence_message_id == mine.pk


def test_an_sms_keyword_is_filed_with_its_message_as_evidence(org_a, patient) -> None:
    with organization_context(org_a):
        services.inbound_receive(from_number="+13125550101", body="STOP", sid="SMevidence1")
        stop = ConversationMessage.objects.get(provider_sid="SMevidence1")
        consent = Consent.objects.get(kind="sms")
        change = ConsentChange.objects.get()
    assert (consent.status, consent.source, consent.evidence_message_id) == ("opted_out", "sms_keyword", stop.pk)
    assert change.evidence_message_id == stop.pk


# -- Enforced at send ---------------------------------------------------------------------------


def test_a_care_message_goes_without_a_record_and_stops_on_a_channel_opt_out(
    org_a, patient, fake_twilio, daytime
) -> None:
    with organization_context(org_a):
        first = _message(patient, slot="a")
    assert _send(org_a, first)[0] == "sent"
    with organization_context(org_a):
        second = _message(patient, slot="b")
        _grant(patient, "sms", status="opted_out")
        # An opt-out cancels what is pending; a row slipped in after it is refused at send.
        OutboundMessage.objects.filter(pk=second.pk).update(status="pending", status_reason="")
    assert _send(org_a, second) == ("cancelled", "The patient opted out of this channel.")
    assert len(fake_twilio.accepted) == 1


def test_an_expired_opt_in_counts_as_none(org_a, patient, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        _grant(patient, "sms", expires_at=daytime - timedelta(minutes=1))
        reminder = _message(patient, kind="adherence", slot="a")
        care = _message(patient, slot="b")
    # A daily reminder needs an opt-in in force: the expired one is absent ...
    assert _send(org_a, reminder) == ("cancelled", "No opt-in in force on this channel.")
    # ... while a care message goes, as with no record at all.
    assert _send(org_a, care)[0] == "sent"


def test_a_daily_reminder_goes_with_an_opt_in_until_it_expires(org_a, patient, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        _grant(patient, "sms", expires_at=daytime + timedelta(minutes=1))
        reminder = _message(patient, kind="adherence")
    assert _send(org_a, reminder)[0] == "sent"


@pytest.mark.parametrize(
    ("marketing", "expected"),
    [
        (None, ("cancelled", "No consent in force to marketing and education campaigns.")),
        ("opted_out", ("cancelled", "No consent in force to marketing and education campaigns.")),
        ("expired", ("cancelled", "No consent in force to marketing and education campaigns.")),
        ("opted_in", ("sent", "")),
    ],
)
def test_a_campaign_needs_the_marketing_consent_beside_the_channel(
    org_a, patient, fake_twilio, daytime, marketing, expected
) -> None:
    with organization_context(org_a):
        _grant(patient, "sms")
        if marketing == "expired":
            _grant(patient, "marketing", expires_at=daytime - timedelta(seconds=1))
        elif marketing:
            _grant(patient, "marketing", status=marketing)
        campaign = _message(patient, kind="campaign")
    status, reason = _send(org_a, campaign)
    assert (status, reason if status == "cancelled" else "") == expected
    assert len(fake_twilio.accepted) == (1 if expected[0] == "sent" else 0)


def test_a_campaign_still_needs_the_channel(org_a, patient, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        _grant(patient, "marketing")
        campaign = _message(patient, kind="campaign")
    assert _send(org_a, campaign) == ("cancelled", "No opt-in in force on this channel.")


def test_the_batch_send_applies_the_same_check(org_a, patient, fake_twilio, daytime) -> None:
    with organization_context(org_a):
        _grant(patient, "sms")
        campaign = _message(patient, kind="campaign", slot="a")
        reminder = _message(patient, kind="adherence", slot="b")
    delivery.messages_send(org_a, [campaign.pk, reminder.pk])
    with organization_context(org_a):
        statuses = dict(OutboundMessage.objects.values_list("pk", "status"))
    assert statuses == {campaign.pk: "cancelled", reminder.pk: "sent"}


def test_a_campaign_is_not_scheduled_for_a_patient_without_marketing_consent(org_a, patient, daytime) -> None:
    with organization_context(org_a):
        _grant(patient, "sms")
        rule = services.rule_save(name="Flu shots", kind="campaign", template_key="lab_results", params={})
        assert services.rule_materialize(rule=rule, now=daytime) == 0
        _grant(patient, "marketing")
        assert services.rule_materialize(rule=rule, now=daytime) == 1


# -- The Consent tab ------------------------------------------------------------------------------


def _url(patient: Any) -> str:
    return reverse("engagement:patient_consent", args=[patient.pk])


def test_staff_record_a_data_sharing_consent_with_expiry_and_evidence(
    org_a, patient, nurse_user, client_for, daytime
) -> None:
    with organization_context(org_a):
        connection = FhirConnection.objects.create(name="County EHR", base_url="https://ehr.example/fhir")
        form = document_upload(patient=patient, title="Signed sharing form", kind="consent_form", data=PDF)
    client = client_for(nurse_user)
    page = client.get(_url(patient)).content.decode()
    assert "County EHR" in page and "Signed sharing form" in page  # offered as party and as evidence
    data = {
        "kind": "data_sharing",
        "party": party_key(connection),
        "status": "opted_in",
        "source": "signed_form",
        "expires_on": "2027-11-30",
        "evidence_document": str(form.pk),
        "note": "",
    }
    assert client.post(_url(patient), data).status_code == 302
    with organization_context(org_a):
        consent = Consent.objects.get(kind="data_sharing")
    assert consent.party == party_key(connection) and consent.evidence_document_id == form.pk
    # Valid through the chosen day in the organization's zone (Chicago): until the next midnight there.
    assert consent.expires_at == datetime.fromisoformat("2027-12-01T00:00:00-06:00")
    page = client.get(_url(patient)).content.decode()
    current = page[page.index('data-testid="consent-current"') : page.index("</table>")]
    assert "Data sharing with an EHR connection: County EHR" in current
    assert "2027-12-01" in current or "2027-11-30" in current
    assert "Document: Signed sharing form" in current


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "data_sharing", "status": "opted_in", "source": "staff"},  # no party
        {"kind": "sms", "status": "opted_out", "source": "staff", "expires_on": "2027-01-01"},  # expiring opt-out
        {"kind": "sms", "status": "opted_in", "source": "staff", "expires_on": "2020-01-01"},  # already past
        {"kind": "sms", "status": "opted_in", "source": "staff", "evidence_document": "999999"},  # not theirs
        {"kind": "data_sharing", "party": "fhir-connection:999999", "status": "opted_in", "source": "staff"},
    ],
)
def test_the_form_refuses_what_the_rules_refuse(org_a, patient, nurse_user, client_for, daytime, data) -> None:
    response = client_for(nurse_user).post(_url(patient), data)
    assert response.status_code == 400
    with organization_context(org_a):
        assert not Consent.objects.exists()


def test_an_expired_consent_is_shown_as_expired(org_a, patient, nurse_user, client_for, daytime) -> None:
    with organization_context(org_a):
        _grant(patient, "marketing", expires_at=daytime - timedelta(days=1))
    page = client_for(nurse_user).get(_url(patient)).content.decode()
    row = page[page.index('data-kind="marketing"') :]
    row = row[: row.index("</tr>")]
    assert "Opted in (expired)" in row
