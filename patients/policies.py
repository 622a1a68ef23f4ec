"""Who may see which part of a patient record: one small, explicit policy for views and templates.

Field groups:
- demographics, contacts, insurance and appointments: `patients.view_patient` (every clinical role,
  the front desk, care team members through django-guardian);
- clinical details (problems, medications, allergies, observations, immunizations, care plans,
  notes, the clinical entries of the timeline): `patients.view_clinical_summary`, held by
  providers, nurses and coordinators, not by the front desk;
- analysts and compliance officers see no patient page at all (no `view_patient`).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from compliance.access import record_denied
from healthcrm.auth import role_in_current_organization

CLINICAL_PERMISSION = "patients.view_clinical_summary"


def can_see_clinical(user: Any) -> bool:
    """May this user see the clinical field group (in the current organization)?"""
    return bool(user.is_authenticated and user.has_perm(CLINICAL_PERMISSION))


def require_clinical(request: HttpRequest, patient: Any) -> None:
    """403 (access-logged as denied) for users who may see the patient but not the clinical details."""
    if not can_see_clinical(request.user):
        record_denied(request, patient)
        raise PermissionDenied


def can_change_patient(user: Any, patient: Any) -> bool:
    return bool(user.has_perm("patients.change_patient") or user.has_perm("patients.change_patient", patient))


def may_work_on_task(user: Any, task: Any) -> bool:
    """The assignee, anyone holding the assigned role, or a clinical user may move a task."""
    role = role_in_current_organization(user)
    return bool(
        task.assignee_id == user.pk or (task.assignee_role and task.assignee_role == role) or can_see_clinical(user)
    )
