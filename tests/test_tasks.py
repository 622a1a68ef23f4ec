"""Tenant tasks run with their organization current and refuse to run without one."""

from __future__ import annotations

import pytest
from celery import shared_task
from django.db import connection

from healthcrm.tasks import TenantTask
from healthcrm.tenancy import get_current_organization
from patients.models import Patient
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

seen: dict[str, object] = {}


@shared_task(base=TenantTask, name="tests.probe_task")
def probe_task(organization_id: int, patient_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('app.current_organization', true)")
        seen["setting"] = cursor.fetchone()[0]
    seen["organization"] = get_current_organization()
    seen["patient_visible"] = Patient.objects.filter(pk=patient_id).exists()


def test_tenant_task_runs_inside_its_organization(org_a, org_b) -> None:
    from healthcrm.tenancy import organization_context

    with organization_context(org_a):
        patient = PatientFactory()
    probe_task.apply(args=(org_a.pk, patient.pk)).get()
    assert seen == {"setting": str(org_a.pk), "organization": org_a, "patient_visible": True}
    probe_task.apply(args=(org_b.pk, patient.pk)).get()
    assert seen["organization"] == org_b and seen["patient_visible"] is False
    assert get_current_organization() is None


def test_tenant_task_refuses_to_run_without_an_organization() -> None:
    result = probe_task.apply(args=(None, 1))
    with pytest.raises(ValueError, match="needs an organization_id"):
        result.get()
