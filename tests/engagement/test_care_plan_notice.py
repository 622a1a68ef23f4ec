"""Outreach subscribes to patients' care_plan_updated event: one notice per plan and day, no detail."""

from __future__ import annotations

import pytest

from engagement.management.commands.seed_engagement import seed_organization
from engagement.models import OutboundMessage
from healthcrm.tenancy import organization_context
from patients.care.defaults import care_plan_templates_install
from patients.care.services import care_plan_start
from patients.models import CarePlanTemplate
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def test_starting_a_care_plan_queues_one_notice(org_a, nurse_user, django_capture_on_commit_callbacks) -> None:
    seed_organization(org_a)
    with organization_context(org_a):
        care_plan_templates_install()
        patient = PatientFactory(preferred_channel="sms", phone_mobile="+13125550177")
        template = CarePlanTemplate.objects.order_by("pk").first()
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            plan = care_plan_start(patient=patient, template=template, actor=nurse_user)
    with django_capture_on_commit_callbacks(execute=True):
        with organization_context(org_a):
            care_plan_start(patient=patient, title="A second plan", actor=nurse_user)
    with organization_context(org_a):
        notices = list(OutboundMessage.objects.filter(patient=patient, rule__kind="care_plan_update"))
    assert {n.subject_id for n in notices} >= {plan.pk}
    assert all(n.subject_type == "care_plan" for n in notices)
    # Replaying the same day's event changes nothing (the outbox key's slot is the day).
    count = len(notices)
    from engagement.receivers import care_plan_notice

    care_plan_notice(None, organization_id=org_a.pk, patient_id=patient.pk, care_plan_id=plan.pk, change="updated")
    with organization_context(org_a):
        assert OutboundMessage.objects.filter(patient=patient, rule__kind="care_plan_update").count() == count


def test_a_task_outside_any_plan_queues_no_care_plan_notice(org_a) -> None:
    from engagement.receivers import care_plan_notice

    seed_organization(org_a)
    with organization_context(org_a):
        patient = PatientFactory(preferred_channel="sms", phone_mobile="+13125550178")
    care_plan_notice(None, organization_id=org_a.pk, patient_id=patient.pk, care_plan_id=None, change="task_added")
    with organization_context(org_a):
        assert not OutboundMessage.objects.filter(patient=patient, rule__kind="care_plan_update").exists()
