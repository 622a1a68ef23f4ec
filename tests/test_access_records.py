"""The access log names what each PHI page showed as (type, id) pairs (issue 9, items 4 and 15).

One case per @phi_view URL: the logged `records` must name the page's own object under its own
type (an appointment's page logs `patients.appointment:<id>`, not the appointment's id as a
patient's), and every pair logged must be a real object of that type that the page was about.
A refused access (403, or 404 for another organization's id) is logged as denied with the id asked for.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from django.apps import apps
from django.urls import get_resolver, reverse
from django.utils import timezone

from analytics.models import CareGap
from compliance.models import AccessAction, AccessLog, AnomalyAlert
from engagement.models import ConsentChange
from engagement.services import consent_set
from healthcrm.tenancy import organization_context
from integrations.right_of_access.services import right_of_access_receive
from patients.breakglass.services import break_glass_grant
from patients.care.services import (
    care_plan_start,
    care_team_add,
    goal_add,
    intervention_add,
    note_add,
    task_assign,
)
from patients.documents.services import document_upload
from patients.models import Patient
from patients.scheduling.services import waitlist_add
from patients.services import coverage_add, patient_identifier_add
from tests.factories import AppointmentFactory, MembershipFactory, PatientFactory, PractitionerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(org_a: Any) -> dict[str, Any]:
    with organization_context(org_a):
        patient = PatientFactory()
        bystander = PatientFactory()  # never shown by a page about `patient`
        appointment = AppointmentFactory(patient=patient, practitioner=PractitionerFactory())
        plan = care_plan_start(patient=patient, title="Hypertension")
        task = task_assign(patient=patient, title="Call back", due_date=date(2030, 1, 2), assignee_role="nurse")
        colleague = UserFactory(username="colleague@north.example")
        MembershipFactory(user=colleague, organization=org_a, role="nurse")
        member = care_team_add(patient=patient, user=colleague, team_role="nurse")
        coverage = coverage_add(patient=patient, payer_name="Acme", member_id="M-1", valid_from=date(2026, 1, 1))
        identifier = patient_identifier_add(patient=patient, system="ehr", value="E-1")
        goal = goal_add(
            care_plan=plan,
            description="BP",
            observation_code="8480-6",
            targets=[{"component": "", "comparator": "<", "value": "140"}],
        )
        intervention = intervention_add(care_plan=plan, description="Home BP cuff")
        note = note_add(patient=patient, body="Signed note", sign=True)
        waitlist = waitlist_add(patient=patient, earliest=date(2030, 1, 1))
        gap = CareGap.objects.create(
            patient=patient,
            recall_key="hba1c",
            period="2026-Q4",
            opened_on=date(2026, 10, 1),
            refreshed_at=timezone.now(),
        )
        consent_change = consent_set(patient=patient, channel="sms", status="opted_out", source="sms_keyword")
        consent_change = ConsentChange.objects.get(patient=patient)
        document = document_upload(patient=patient, title="Referral", kind="referral", data=b"%PDF-1.4 test")
        breakglass = break_glass_grant(user=colleague, patient=patient, reason="emergency")
        alert = AnomalyAlert.objects.create(
            rule="flagged", user=colleague, subject=colleague.username, day=date(2026, 12, 1), evidence={}
        )
        roa = right_of_access_receive(patient=patient, actor=None, now=timezone.now())
    # Patient ids and appointment ids are chosen to collide, like the attack's (appointment 28, patient 28).
    return {
        "patient": patient,
        "bystander": bystander,
        "appointment": appointment,
        "plan": plan,
        "task": task,
        "member": member,
        "gap": gap,
        "coverage": coverage,
        "identifier": identifier,
        "consent_change": consent_change,
        "document": document,
        "goal": goal,
        "intervention": intervention,
        "note": note,
        "waitlist": waitlist,
        "breakglass": breakglass,
        "alert": alert,
        "roa": roa,
    }


def key(obj: Any) -> str:
    return f"{obj._meta.label_lower}:{obj.pk}"


P, A = "patients.patient", "patients.appointment"
# url name -> (method, the object in the route, the pairs the page must log)
CASES: dict[str, tuple[str, str, list[str]]] = {
    "patients:list": ("get", "", ["patient"]),
    "patients:create": ("get", "", []),
    "patients:detail": ("get", "patient", ["patient"]),
    "patients:edit": ("get", "patient", ["patient"]),
    "patients:condition_add": ("get", "patient", ["patient"]),
    "patients:medication_add": ("get", "patient", ["patient"]),
    "patients:allergy_add": ("get", "patient", ["patient"]),
    "patients:observation_add": ("get", "patient", ["patient"]),
    "patients:merge": ("get", "patient", ["patient"]),
    "patients:access_report": ("get", "patient", ["patient"]),
    "engagement:access_report_request": ("post", "patient", ["patient"]),
    "patients:coverage_add": ("get", "patient", ["patient"]),
    "patients:coverage_edit": ("get", "coverage", ["coverage", "patient"]),
    "patients:coverage_remove": ("post", "coverage", ["coverage", "patient"]),
    "patients:identifier_add": ("get", "patient", ["patient"]),
    "patients:identifier_edit": ("get", "identifier", ["identifier", "patient"]),
    "patients:identifier_remove": ("post", "identifier", ["identifier", "patient"]),
    "patients:appointment_create": ("get", "patient", ["patient"]),
    "patients:appointment_calendar": ("get", "", ["appointment", "patient"]),
    "patients:appointment_day": ("get", "", []),  # today's visits (the world's is on another day)
    "patients:appointment_book": ("get", "", []),  # a form until a patient is searched for
    "patients:waitlist_add": ("get", "patient", ["patient"]),
    "patients:waitlist": ("get", "", ["patient"]),
    "patients:waitlist_remove": ("post", "waitlist", ["waitlist", "patient"]),
    "patients:appointment_detail": ("get", "appointment", ["appointment", "patient"]),
    "patients:appointment_reschedule": ("get", "appointment", ["appointment", "patient"]),
    "patients:appointment_status": ("post", "appointment", ["appointment"]),
    "patients:appointment_cancel": ("get", "appointment", ["appointment", "patient"]),
    "patients:care_plan": ("get", "patient", ["patient"]),
    "patients:appointments": ("get", "patient", ["patient"]),
    "patients:timeline": ("get", "patient", ["patient"]),
    "patients:note_add": ("get", "patient", ["patient"]),
    "patients:note_detail": ("get", "note", ["note", "patient"]),
    "patients:note_edit": ("get", "note", ["note", "patient"]),  # signed: sent to its page, nothing edited
    "patients:note_sign": ("post", "note", ["note", "patient"]),
    "patients:note_amend": ("get", "note", ["note", "patient"]),
    "patients:note_restrict": ("post", "note", ["note", "patient"]),  # nothing to lift: sent to its page
    "patients:goal_edit": ("get", "goal", ["goal", "patient"]),
    "patients:goal_status": ("post", "goal", ["goal", "patient"]),
    "patients:intervention_add": ("post", "plan", ["plan", "patient"]),
    "patients:intervention_status": ("post", "intervention", ["intervention", "patient"]),
    "patients:task_detail": ("get", "task", ["task", "patient"]),
    "patients:task_edit": ("post", "task", ["task", "patient"]),
    "patients:task_reassign": ("post", "task", ["task", "patient"]),
    "patients:task_reopen": ("post", "task", ["task", "patient"]),
    "patients:care_team_add": ("post", "patient", ["patient"]),
    "patients:care_team_remove": ("post", "member", ["patient"]),
    "patients:care_plan_start": ("get", "patient", ["patient"]),
    "patients:care_plan_update": ("get", "plan", ["plan", "patient"]),
    "patients:task_add": ("get", "patient", ["patient"]),
    "patients:task_status": ("post", "task", ["task", "patient"]),
    "patients:my_tasks": ("get", "", []),
    "patients:team_queue": ("get", "", ["patient"]),
    "patients:follow_up": ("get", "", []),
    "integrations:fhir_patient_export": ("get", "patient", ["patient"]),
    "integrations:right_of_access_list": ("get", "", ["roa", "patient"]),
    "integrations:right_of_access": ("get", "roa", ["roa", "patient"]),
    "integrations:right_of_access_start": ("post", "roa", ["roa", "patient"]),
    "integrations:right_of_access_download": ("post", "roa", ["roa", "patient"]),  # not ready: sent back
    "integrations:right_of_access_create": ("post", "patient", ["patient"]),
    "engagement:outbox": ("get", "", []),
    ":dashboard": ("get", "", []),  # names patients only in the role's panels (tests/staff/test_dashboard.py)
    "engagement:conversations": ("get", "", []),
    "engagement:conversation": ("get", "patient", ["patient"]),
    "engagement:patient_communications": ("get", "patient", ["patient"]),
    "engagement:patient_consent": ("get", "patient", ["patient", "consent_change"]),
    "engagement:patient_engagement": ("get", "patient", ["patient"]),
    "engagement:patient_questionnaires": ("get", "patient", ["patient"]),
    "patients:documents": ("get", "patient", ["patient", "document"]),
    "patients:document_download": ("get", "document", ["document", "patient"]),
    "patients:document_delete": ("post", "document", ["document", "patient"]),
    "patients:document_restrict": ("post", "document", ["document", "patient"]),  # nothing to lift
    "analytics:gaps": ("get", "", ["gap", "patient"]),
    "analytics:gaps_export": ("get", "", ["gap", "patient"]),
    "analytics:gap_call": ("post", "gap", ["gap", "patient"]),
    "analytics:gap_recall": ("post", "gap", ["gap", "patient"]),
    "analytics:measure_gaps": ("get", "", []),
    "patients:break_glass": ("get", "patient", ["patient"]),  # a provider with no restriction: sent on
    "patients:break_glass_events": ("get", "", ["breakglass", "patient"]),
    "patients:break_glass_review": ("get", "breakglass", ["breakglass", "patient"]),
    "patients:erasure": ("get", "patient", ["patient"]),
    "patients:erasure_overview": ("get", "", []),  # names patients only with requests or holds open
    "compliance:access_log": ("get", "", []),  # names a patient only when filtered by one
    "compliance:audit_search": ("get", "", []),  # the same
    "compliance:anomaly_review": ("get", "alert", ["alert"]),
    "patients:access_flag": ("get", "patient", ["patient"]),
}


# Pages of the administrator's (outreach, exports); the rest are seen as a provider (clinical).
ADMIN_ONLY = {
    "engagement:outbox": "admin",
    "compliance:access_log": "compliance",
    "compliance:audit_search": "compliance",
    "compliance:anomaly_review": "compliance",
    "patients:access_flag": "compliance",
    "patients:break_glass_events": "compliance",
    "patients:break_glass_review": "compliance",
    "patients:access_report": "compliance",
    "patients:erasure": "compliance",
    "patients:erasure_overview": "compliance",
    "engagement:access_report_request": "compliance",
    **{
        f"integrations:{name}": "compliance"
        for name in (
            "right_of_access_list",
            "right_of_access",
            "right_of_access_start",
            "right_of_access_download",
            "right_of_access_create",
        )
    },
    "patients:merge": "admin",
    "patients:document_delete": "admin",
    # Insurance and identifiers: registration (the front desk), not the clinical roles.
    **{
        f"patients:{kind}_{action}": "frontdesk"
        for kind in ("coverage", "identifier")
        for action in ("add", "edit", "remove")
    },
}
# Pages that delete the record they name: the log names it, and it is gone afterwards.
REMOVES = {"patients:coverage_remove", "patients:identifier_remove"}


def _phi_view_names() -> set[str]:
    names = set()

    def walk(resolver: Any, namespace: str) -> None:
        for entry in resolver.url_patterns:
            if hasattr(entry, "url_patterns"):
                if not str(entry.pattern).startswith("admin/"):
                    walk(entry, entry.namespace or namespace)
                continue
            view = entry.callback
            while view is not None:
                if getattr(view, "phi_access_action", None):
                    names.add(f"{namespace}:{entry.name}")
                    break
                view = getattr(view, "__wrapped__", None)

    walk(get_resolver(), "")
    return names


def test_every_phi_view_has_a_case() -> None:
    assert _phi_view_names() == set(CASES)


def _admin(org_a: Any, client: Any, role: str = "admin") -> Any:
    user = UserFactory(username=f"{role}@north.example")
    MembershipFactory(user=user, organization=org_a, role=role)
    client.force_login(user)
    return user


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_phi_view_logs_what_it_showed_as_type_and_id(name, org_a, client, world) -> None:
    method, route_object, expected = CASES[name]
    _admin(org_a, client, ADMIN_ONLY.get(name, "provider"))
    args = [world[route_object].pk] if route_object else []
    url = reverse(name.lstrip(":"), args=args)  # ":dashboard": a view outside any namespace
    with organization_context(org_a):
        before = set(AccessLog.objects.values_list("pk", flat=True))
    data = {"status": "confirmed"} if name == "patients:appointment_status" else {}
    if name == "patients:task_status":
        data = {"status": "done"}
    if name == "patients:task_edit":
        data = {"title": "Call back", "due_date": "2030-01-02", "priority": "urgent"}
    if name == "patients:task_reassign":
        data = {"assignee_role": "frontdesk"}
    if name in ("patients:goal_status", "patients:intervention_status"):
        data = {"status": "cancelled"}
    if name == "patients:intervention_add":
        data = {"description": "Diet advice"}
    if name == "analytics:gap_call":
        data = {"outcome": "reached"}
    response = getattr(client, method)(url, data)
    assert response.status_code < 400, (name, response.status_code)
    with organization_context(org_a):
        written = list(AccessLog.objects.exclude(pk__in=before))
    if not expected and not written:
        return  # a form page that showed no record (a view action logs only what it showed)
    [entry] = written
    assert entry.action != AccessAction.DENIED
    for wanted in expected:
        assert key(world[wanted]) in entry.records, (name, entry.records)
    if route_object:
        # The route's object is logged under its own type, first (object_type/object_ids summarize it).
        assert entry.records[0] == key(world[route_object]) or route_object == "member"
        if route_object != "member":
            assert entry.object_type == world[route_object]._meta.label_lower
            assert entry.object_ids == [str(world[route_object].pk)]
    assert key(world["bystander"]) not in entry.records or not route_object
    with organization_context(org_a):
        for record in entry.records:
            label, _, pk = record.rpartition(":")
            model = apps.get_model(label)
            if name in REMOVES and route_object and record == key(world[route_object]):
                continue
            assert model.objects.filter(pk=int(pk)).exists(), (name, record)
            if model is Patient:
                continue
            # Every non-patient record named belongs to the page's patient (never another's id).
            owner = getattr(model.objects.get(pk=int(pk)), "patient_id", None)
            assert owner in (None, world["patient"].pk, world["bystander"].pk), (name, record)


def test_the_appointment_page_of_the_attack_logs_the_appointment_and_its_patient(org_a, client, world) -> None:
    _admin(org_a, client)
    appointment = world["appointment"]
    assert client.get(reverse("patients:appointment_detail", args=[appointment.pk])).status_code == 200
    with organization_context(org_a):
        entry = AccessLog.objects.get(view_name="patients:appointment_detail")
    assert entry.records == [f"{A}:{appointment.pk}", f"{P}:{appointment.patient_id}"]
    assert (entry.object_type, entry.object_ids) == (A, [str(appointment.pk)])


def test_the_access_log_filters_by_record_id_typed_or_not(org_a, client, world) -> None:
    _admin(org_a, client)
    appointment = world["appointment"]
    client.get(reverse("patients:appointment_detail", args=[appointment.pk]))
    client.get(reverse("patients:detail", args=[world["bystander"].pk]))
    _admin(org_a, client, "compliance")
    page = client.get(reverse("compliance:access_log"), {"object": f"{A}:{appointment.pk}"})
    assert page.status_code == 200
    assert [e.view_name for e in page.context["page"].object_list] == ["patients:appointment_detail"]
    page = client.get(reverse("compliance:access_log"), {"object": str(world["bystander"].pk)})
    assert "patients:detail" in [e.view_name for e in page.context["page"].object_list]
    page = client.get(reverse("compliance:access_log"), {"object": f"{P}:{world['bystander'].pk}"})
    assert [e.view_name for e in page.context["page"].object_list] == ["patients:detail"]


# -- Refusals are logged as denied, with the id asked for (item 15) ----------------------------


def test_another_organizations_id_on_a_phi_route_is_logged_as_denied(org_a, org_b, client, world) -> None:
    stranger = UserFactory(username="admin@lake.example")
    MembershipFactory(user=stranger, organization=org_b, role="admin")
    client.force_login(stranger)
    appointment = world["appointment"]
    assert client.get(reverse("patients:appointment_detail", args=[appointment.pk])).status_code == 404
    with organization_context(org_b):
        [entry] = AccessLog.objects.all()
    assert (entry.action, entry.actor, entry.records) == (AccessAction.DENIED, stranger, [f"{A}:{appointment.pk}"])
    assert entry.view_name == "patients:appointment_detail"
    with organization_context(org_a):
        assert not AccessLog.objects.exists()


def test_a_403_on_a_list_page_is_logged_as_denied(org_a, client, analyst_user) -> None:
    client.force_login(analyst_user)  # an analyst: no view_patient, no view_appointment
    for name in ("patients:list", "patients:appointment_calendar", "patients:team_queue"):
        assert client.get(reverse(name)).status_code == 403, name
    with organization_context(org_a):
        entries = list(AccessLog.objects.order_by("id"))
    assert [(e.action, e.view_name) for e in entries] == [
        (AccessAction.DENIED, "patients:list"),
        (AccessAction.DENIED, "patients:appointment_calendar"),
        (AccessAction.DENIED, "patients:team_queue"),
    ]


def test_a_403_after_a_guard_logs_one_denied_row_naming_the_record(org_a, client, analyst_user, world) -> None:
    client.force_login(analyst_user)
    patient = world["patient"]
    assert client.get(reverse("patients:timeline", args=[patient.pk])).status_code == 403
    with organization_context(org_a):
        [entry] = AccessLog.objects.all()
    assert (entry.action, entry.records) == (AccessAction.DENIED, [f"{P}:{patient.pk}"])


def test_a_hostile_id_asked_for_is_logged_without_its_text(org_a, client, world) -> None:
    _admin(org_a, client, "provider")
    patient = world["patient"]
    response = client.get(reverse("patients:task_add", args=[patient.pk]), {"care_plan": "x\x00" * 50})
    assert response.status_code == 404
    with organization_context(org_a):
        [entry] = AccessLog.objects.filter(action=AccessAction.DENIED)
    assert entry.records == ["patients.careplan:?"]


def test_the_access_log_ignores_filters_that_do_not_parse(org_a, client, world) -> None:
    _admin(org_a, client, "provider")
    client.get(reverse("patients:detail", args=[world["patient"].pk]))
    _admin(org_a, client, "compliance")
    for hostile in ({"actor": "\x00"}, {"object": "abc"}, {"object": "9" * 30}, {"action": "nope"}):
        page = client.get(reverse("compliance:access_log"), hostile)
        assert page.status_code == 200, hostile
        assert "patients:detail" in [e.view_name for e in page.context["page"].object_list], hostile
