"""Issue #11 (calendar, "a waitlist that is offered a freed slot by SMS, first to confirm gets it")
and the organization's slot length. Runs under every wall clock (tests/clocks.py): the visits are in
2031, in organization A's zone (America/Chicago), so each clock is long before them.

A cancelled (or moved) visit's time is offered to the first matching waiting patients (the
organization's number at once) through the outbox (exactly once, consent, quiet hours); the link's
page books the slot for the first patient who takes it, in one transaction guarded by a conditional
UPDATE; later takers are told politely and stay on the waitlist; staff see each offer's status."""

from __future__ import annotations

import threading
import time as time_module
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from engagement import links, selectors, services
from engagement.delivery.render import render_message
from engagement.models import Consent, OutboundMessage, Rule
from healthcrm.tenancy import organization_context
from patients.models import Appointment, OfferStatus, SlotOffer, WaitlistEntry, WaitlistOffer, WaitlistStatus
from patients.scheduling.options import scheduling_options
from patients.scheduling.services import (
    appointment_book,
    appointment_cancel,
    appointment_reschedule,
    waitlist_add,
)
from tests.engagement.conftest import configure
from tests.factories import LocationFactory, PatientFactory, PractitionerFactory

pytestmark = pytest.mark.django_db

CHICAGO = ZoneInfo("America/Chicago")
START = datetime(2031, 3, 3, 10, 0, tzinfo=CHICAGO)  # a Monday
SMS = (
    "Hi {{ first_name }}, {{ clinic_name }} has an earlier visit free: {{ appointment_time }}. "
    "First to confirm gets it: {{ slot_link }}"
)
TAKEN_BY_OTHER = b"this slot was taken by someone else"


def _setup_outreach(organization: Any) -> None:
    configure(organization)
    with organization_context(organization):
        services.template_save(key="waitlist_offer", language="en", channel="sms", body=SMS)
        Rule.objects.create(name="Waitlist offers", kind="waitlist_offer", template_key="waitlist_offer")


@pytest.fixture
def clinic(org_a: Any) -> dict[str, Any]:
    """Dr. Free (no hours set) at Main; Bea's visit at START; four patients waiting, first come first:
    Ann (anyone, anywhere), Ben (Dr. Free at Main), Cy (another doctor), Dee (until the day before),
    Eve (at the Annex), Fay (anyone: fourth in line)."""
    _setup_outreach(org_a)
    with organization_context(org_a):
        main, annex = LocationFactory(name="Main"), LocationFactory(name="Annex")
        doctor, other_doctor = PractitionerFactory(display_name="Dr. Free"), PractitionerFactory()

        def patient(name: str) -> Any:
            return PatientFactory(given_name=name, family_name=f"{name}son", preferred_channel="sms", timezone="")

        people = {name: patient(name) for name in ("Bea", "Ann", "Ben", "Cy", "Dee", "Eve", "Fay")}
        visit = appointment_book(
            patient=people["Bea"],
            practitioner=doctor,
            location=main,
            starts_at=START,
            ends_at=START + timedelta(minutes=30),
            appointment_type="annual",
        )
        earliest = date(2031, 3, 1)
        entries = {
            "Ann": waitlist_add(patient=people["Ann"], earliest=earliest),
            "Ben": waitlist_add(patient=people["Ben"], earliest=earliest, practitioner=doctor, location=main),
            "Cy": waitlist_add(patient=people["Cy"], earliest=earliest, practitioner=other_doctor),
            "Dee": waitlist_add(patient=people["Dee"], earliest=earliest, latest=date(2031, 3, 2)),
            "Eve": waitlist_add(patient=people["Eve"], earliest=earliest, location=annex),
            "Fay": waitlist_add(patient=people["Fay"], earliest=earliest),
        }
    return {"main": main, "doctor": doctor, "visit": visit, "people": people, "entries": entries}


def _settings(organization: Any, **scheduling: Any) -> None:
    organization.settings = {**(organization.settings or {}), "scheduling": scheduling}
    organization.save(update_fields=["settings"])


def _cancel(organization: Any, clinic: dict[str, Any], capture: Any) -> None:
    with capture(execute=False), organization_context(organization):
        appointment_cancel(appointment=Appointment.objects.get(pk=clinic["visit"].pk), reason="illness")


def _offers(organization: Any) -> dict[str, WaitlistOffer]:
    with organization_context(organization):
        return {o.entry.patient.given_name: o for o in WaitlistOffer.objects.select_related("entry__patient", "slot")}


def _link(organization: Any, patient_name: str, *, issued: datetime | None = None) -> str:
    """The signed link of the offer message to this patient (the message marked sent)."""
    with organization_context(organization):
        messages = OutboundMessage.objects.filter(subject_type="waitlist_offer", channel="sms")
        [message] = [m for m in messages.select_related("patient") if m.patient.given_name == patient_name]
        OutboundMessage.objects.filter(pk=message.pk).update(status="sent")
    token = links.make_token(organization_id=organization.pk, message_id=message.pk, action="slot", now=issued)
    return f"/engagement/l/{token}/"


def _entry_status(organization: Any, entry: WaitlistEntry) -> str:
    with organization_context(organization):
        return WaitlistEntry.objects.get(pk=entry.pk).status


# -- Offering ------------------------------------------------------------------------------------


def test_a_cancelled_visit_is_offered_to_the_first_matching_patients_once(
    org_a, clinic, django_capture_on_commit_callbacks
) -> None:
    _settings(org_a, waitlist_offers_at_once=2)
    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    offers = _offers(org_a)
    # Cy waits for another doctor, Dee's wait ends the day before, Eve waits at the Annex; Fay is third.
    assert sorted(offers) == ["Ann", "Ben"]
    with organization_context(org_a):
        [slot] = SlotOffer.objects.all()
        assert (slot.starts_at, slot.ends_at, slot.practitioner_id, slot.location_id, slot.appointment_type) == (
            START,
            START + timedelta(minutes=30),
            clinic["doctor"].pk,
            clinic["main"].pk,
            "annual",
        )
        assert slot.freed_from_id == clinic["visit"].pk and slot.status == "open"
        messages = list(OutboundMessage.objects.filter(subject_type="waitlist_offer").select_related("patient"))
        assert sorted(m.patient.given_name for m in messages) == ["Ann", "Ben"]
        for message in messages:
            assert (message.channel, message.slot, message.expires_at, message.is_urgent) == (
                "sms",
                "offer",
                START,
                False,
            )
            # Quiet hours apply: the first attempt is inside the patient's 08:00-21:00 window.
            assert time(8) <= message.next_attempt_at.astimezone(CHICAGO).time() <= time(21)
        # Exactly once: announcing the same offers again queues nothing more.
        services.waitlist_offer_notices(offer_ids=tuple(o.pk for o in offers.values()))
        assert OutboundMessage.objects.filter(subject_type="waitlist_offer").count() == 2
        # The SMS carries the first name, the time, the clinic and the link: not the family name.
        ann = next(m for m in messages if m.patient.given_name == "Ann")
        _, body = render_message(ann, org_a, selectors.channel_settings_get())
        assert body.startswith("Hi Ann, North Clinic has an earlier visit free: Mon Mar 3, 10:00 AM.")
        assert "/engagement/l/" in body and "Annson" not in body
        # Audited: the slot and each offer have their change-log entries.
        for model in (SlotOffer, WaitlistOffer):
            assert LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model)).exists()


def test_auto_offer_off_offers_nothing_and_defaults_are_sensible(
    org_a, clinic, django_capture_on_commit_callbacks
) -> None:
    options = scheduling_options(org_a)
    assert (options.waitlist_auto_offer, options.waitlist_offers_at_once, options.slot_minutes) == (True, 3, 15)
    _settings(org_a, waitlist_auto_offer=False)
    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    assert _offers(org_a) == {}
    with organization_context(org_a):
        assert not OutboundMessage.objects.filter(subject_type="waitlist_offer").exists()


def test_an_opted_out_patient_is_not_messaged(org_a, clinic, django_capture_on_commit_callbacks) -> None:
    with organization_context(org_a):
        services.consent_set(patient=clinic["people"]["Ann"], channel="sms", status="opted_out", source="staff")
        services.consent_set(patient=clinic["people"]["Ann"], channel="email", status="opted_out", source="staff")
    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    with organization_context(org_a):
        assert Consent.objects.filter(patient=clinic["people"]["Ann"], status="opted_out").count() == 2
        names = {m.patient.given_name for m in OutboundMessage.objects.filter(subject_type="waitlist_offer")}
    assert names == {"Ben", "Fay"}


def test_a_moved_visit_offers_its_old_time(org_a, clinic, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False), organization_context(org_a):
        visit = Appointment.objects.get(pk=clinic["visit"].pk)
        later = START + timedelta(hours=3)
        appointment_reschedule(appointment=visit, starts_at=later, ends_at=later + timedelta(minutes=30))
        [slot] = SlotOffer.objects.all()
        assert slot.starts_at == START
    assert sorted(_offers(org_a)) == ["Ann", "Ben", "Fay"]


# -- Taking it: the link's page ------------------------------------------------------------------


def test_the_first_confirmation_books_the_slot_and_later_ones_are_told_politely(
    org_a, clinic, client, django_capture_on_commit_callbacks
) -> None:
    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    ann, ben = _link(org_a, "Ann"), _link(org_a, "Ben")

    # Opening the link shows the clinic, the time and the place, and takes nothing.
    page = client.get(ann)
    assert page.status_code == 200
    body = page.content.decode()
    assert "North Clinic" in body and "Monday 3 March, 10:00" in body and "Main" in body
    assert "Take this slot" in body and "Annson" not in body and "Dr. Free" not in body
    assert _offers(org_a)["Ann"].status == "offered"

    taken = client.post(ann)
    assert taken.status_code == 200 and b"This visit is yours" in taken.content
    with organization_context(org_a):
        [booked] = Appointment.objects.filter(status="booked")
        assert (booked.patient_id, booked.practitioner_id, booked.location_id) == (
            clinic["people"]["Ann"].pk,
            clinic["doctor"].pk,
            clinic["main"].pk,
        )
        assert (booked.starts_at, booked.appointment_type) == (START, "annual")
        entry = WaitlistEntry.objects.get(pk=clinic["entries"]["Ann"].pk)
        assert (entry.status, entry.appointment_id) == (WaitlistStatus.BOOKED, booked.pk)
        assert SlotOffer.objects.get().appointment_id == booked.pk
    offers = _offers(org_a)
    assert (offers["Ann"].status, offers["Ben"].status, offers["Fay"].status) == ("taken", "missed", "missed")

    # A second click of the winner's link says so again; the others are told it was taken.
    assert b"This visit is yours" in client.post(ann).content
    for response in (client.get(ben), client.post(ben)):
        assert response.status_code == 410 and TAKEN_BY_OTHER in response.content
    assert _entry_status(org_a, clinic["entries"]["Ben"]) == WaitlistStatus.WAITING
    with organization_context(org_a):
        assert Appointment.objects.filter(status="booked").count() == 1


def test_tampered_and_expired_links_are_polite_and_write_nothing(
    org_a, clinic, client, django_capture_on_commit_callbacks
) -> None:
    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    url = _link(org_a, "Ann", issued=START - timedelta(hours=1))
    tampered = url[:-6] + ("A" if url[-6] != "A" else "B") + url[-5:]
    for response in (client.get(tampered), client.post(tampered)):
        assert response.status_code == 404 and b"this link is not valid" in response.content
    # A link issued longer ago than ENGAGEMENT_LINK_MAX_AGE has expired.
    old = _link(org_a, "Ann", issued=timezone.now() - timedelta(days=30))
    response = client.post(old)
    assert response.status_code == 410 and b"this link has expired" in response.content
    # Once the slot's time has come, the offer has ended (the link expires with it).
    with time_machine.travel(START + timedelta(minutes=1), tick=False):
        late = client.post(url)
    assert late.status_code == 410 and b"this offer has ended" in late.content
    assert _entry_status(org_a, clinic["entries"]["Ann"]) == WaitlistStatus.WAITING
    with organization_context(org_a):
        assert not Appointment.objects.filter(status="booked").exists()
        assert SlotOffer.objects.get().status == "open"


def test_a_slot_booked_by_staff_meanwhile_is_not_double_booked(
    org_a, clinic, client, django_capture_on_commit_callbacks
) -> None:
    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    with organization_context(org_a):
        appointment_book(
            patient=clinic["people"]["Cy"],
            practitioner=clinic["doctor"],
            starts_at=START,
            ends_at=START + timedelta(minutes=30),
        )
    response = client.post(_link(org_a, "Ann"))
    assert response.status_code == 410 and b"this offer has ended" in response.content
    assert _entry_status(org_a, clinic["entries"]["Ann"]) == WaitlistStatus.WAITING
    with organization_context(org_a):
        assert Appointment.objects.filter(status="booked").count() == 1  # Cy's only


@pytest.mark.django_db(transaction=True)
def test_two_patients_confirming_at_once_exactly_one_wins(
    org_a, clinic, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    import patients.scheduling.services as scheduling

    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    urls = {"Ann": _link(org_a, "Ann"), "Ben": _link(org_a, "Ben")}
    real_book = scheduling.appointment_book
    books: list[int] = []

    def slow_book(**kwargs: Any) -> Any:
        books.append(1)
        time_module.sleep(0.3)  # hold the claim's transaction open: the other claim arrives meanwhile
        return real_book(**kwargs)

    monkeypatch.setattr(scheduling, "appointment_book", slow_book)
    start = threading.Barrier(2)
    results: dict[str, tuple[int, bytes]] = {}
    errors: list[BaseException] = []

    def take(name: str) -> None:
        try:
            start.wait(timeout=10)
            response = Client().post(urls[name])
            results[name] = (response.status_code, response.content)
        except BaseException as exc:  # shown by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(name,)) for name in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert sorted(code for code, _ in results.values()) == [200, 410]
    [winner] = [name for name, (code, _) in results.items() if code == 200]
    [loser] = [name for name in urls if name != winner]
    assert b"This visit is yours" in results[winner][1] and TAKEN_BY_OTHER in results[loser][1]
    assert len(books) == 1  # the loser never reached the booking
    with organization_context(org_a):
        [booked] = Appointment.objects.filter(status="booked")
        assert booked.patient_id == clinic["people"][winner].pk
    assert _entry_status(org_a, clinic["entries"][winner]) == WaitlistStatus.BOOKED
    assert _entry_status(org_a, clinic["entries"][loser]) == WaitlistStatus.WAITING


def test_an_offer_still_waiting_to_go_when_the_slot_is_taken_is_not_sent(
    org_a, clinic, django_capture_on_commit_callbacks
) -> None:
    from engagement.delivery import message_send

    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    assert Client().post(_link(org_a, "Ann")).status_code == 200
    with organization_context(org_a):
        [ben] = [m for m in OutboundMessage.objects.filter(status="pending") if m.patient.given_name == "Ben"]
    assert message_send(org_a, ben.pk) == "skipped"
    with organization_context(org_a):
        ben.refresh_from_db()
    assert (ben.status, ben.status_reason) == ("cancelled", "The slot offered was taken or is gone.")


# -- Staff see each offer's status on the waitlist -------------------------------------------------


def test_the_waitlist_shows_offered_taken_and_expired(
    org_a, clinic, client_for, frontdesk_user, other_org_user, django_capture_on_commit_callbacks
) -> None:
    _cancel(org_a, clinic, django_capture_on_commit_callbacks)
    desk = client_for(frontdesk_user)
    page = desk.get(reverse("patients:waitlist")).content.decode()
    assert page.count("Offered: Mon 3 Mar 10:00") == 3  # Ann, Ben and Fay
    Client().post(_link(org_a, "Ann"))
    page = desk.get(reverse("patients:waitlist")).content.decode()
    assert "Taken by another patient: Mon 3 Mar 10:00" in page  # Ben's and Fay's rows
    assert "Annson, Ann</a>: Taken" in page  # Ann left the list: the offers table says she took it
    with time_machine.travel(START + timedelta(hours=1), tick=False):
        # An offer nobody answered has expired once its slot started.
        with organization_context(org_a):
            offer = WaitlistOffer.objects.select_related("slot").get(entry=clinic["entries"]["Ben"])
            offer.slot.status = "open"  # as if nobody had taken it
            offer.status = "offered"
            assert offer.status_at(START + timedelta(hours=1)) == OfferStatus.EXPIRED
    # Another organization's user sees none of it.
    assert "Annson" not in client_for(other_org_user).get(reverse("patients:waitlist")).content.decode()


# -- The organization's slot length ------------------------------------------------------------------


@pytest.mark.parametrize(("stored", "minutes"), [(30, 30), (10, 10), (7, 15), ("20", 15)])
def test_the_day_grid_and_booking_use_the_organizations_slot_length(
    org_a, clinic, client_for, frontdesk_user, stored, minutes
) -> None:
    _settings(org_a, slot_minutes=stored)
    desk = client_for(frontdesk_user)
    day = desk.get(reverse("patients:appointment_day"), {"date": "2031-03-03", "location": clinic["main"].pk})
    assert day.status_code == 200
    assert f"rows of {minutes} minutes" in day.content.decode()
    rows = day.context["grid"].rows
    steps = {(b.starts_at - a.starts_at) for a, b in zip(rows, rows[1:], strict=False)}
    assert steps == {timedelta(minutes=minutes)}
    # Open slots link to the booking form at the slot's start, which books one slot by default.
    opened = [c for r in rows for c in r.cells if c.state == "open"]
    assert opened and all(c.starts_at.minute % minutes == 0 for c in opened)
    booking = desk.get(
        reverse("patients:appointment_book"),
        {"practitioner": clinic["doctor"].pk, "location": clinic["main"].pk, "date": "2031-03-03", "time": "11:00"},
    )
    assert booking.context["form"].initial["duration"] == minutes
    assert f'<option value="{minutes}" selected>' in booking.content.decode()
