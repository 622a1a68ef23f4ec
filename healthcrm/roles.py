"""Staff roles and the permission groups they map to.

A role is held per organization (Membership.role). Each role has a Django group, `role:<name>`,
whose permissions platform administrators may extend in the admin; `OrganizationRoleBackend`
grants a user the group of their role in the *current* organization only, so a nurse in one
clinic and administrator in another is a nurse while working in the first.
"""

from __future__ import annotations

from typing import Any

from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Administrator"
    PROVIDER = "provider", "Provider"
    NURSE = "nurse", "Nurse"
    COORDINATOR = "coordinator", "Care coordinator"
    FRONTDESK = "frontdesk", "Front desk"
    ANALYST = "analyst", "Analyst"
    COMPLIANCE = "compliance", "Compliance officer"


def group_name(role: str) -> str:
    return f"role:{role}"


_CLINICAL = ["patients.view_patient", "patients.add_patient", "patients.change_patient"]
# Registration: insurance coverage and identifiers other systems give the patient (not clinical).
_REGISTRATION = [
    f"patients.{action}_{model}"
    for model in ("coverage", "patientidentifier")
    for action in ("view", "add", "change", "delete")
]
_SCHEDULING = [
    "patients.view_appointment",
    "patients.add_appointment",
    "patients.change_appointment",
    "patients.view_practitioner",
]

# Care coordination: the clinical field group (problems, medications, results, care plans, notes),
# care teams, plans and tasks. The front desk gets tasks (a role queue) but not the clinical group.
_CARE = [
    "patients.view_clinical_summary",
    "patients.view_careteammember",
    "patients.add_careteammember",
    "patients.change_careteammember",
    "patients.view_careplan",
    "patients.add_careplan",
    "patients.change_careplan",
    "patients.view_caretask",
    "patients.add_caretask",
    "patients.change_caretask",
    "patients.view_patientnote",
    "patients.add_patientnote",
    "patients.change_patientnote",  # drafts, by their author only (patients.care.services.note_update)
    "patients.view_careplantemplate",
]
_TEMPLATES = [
    "patients.view_careplantemplate",
    "patients.add_careplantemplate",
    "patients.change_careplantemplate",
    "patients.view_goaltemplate",
    "patients.add_goaltemplate",
    "patients.change_goaltemplate",
    "patients.view_interventiontemplate",
    "patients.add_interventiontemplate",
    "patients.change_interventiontemplate",
    "patients.view_tasktemplate",
    "patients.add_tasktemplate",
    "patients.change_tasktemplate",
]

# Outreach (engagement/): who reads the outbox and conversations, who edits rules and templates.
_OUTREACH_VIEW = [
    "engagement.view_outboundmessage",
    "engagement.view_conversationmessage",
    "engagement.add_conversationmessage",
]
_OUTREACH_AUTHOR = [
    "engagement.view_rule",
    "engagement.add_rule",
    "engagement.change_rule",
    "engagement.view_messagetemplate",
    "engagement.add_messagetemplate",
    "engagement.change_messagetemplate",
]

_OUTREACH: dict[str, list[str]] = {
    "admin": [
        *_OUTREACH_VIEW,
        *_OUTREACH_AUTHOR,
        "engagement.view_channelsettings",
        "engagement.change_channelsettings",
        "engagement.view_consent",
        "engagement.change_consent",
    ],
    "coordinator": [*_OUTREACH_VIEW, *_OUTREACH_AUTHOR, "engagement.view_consent", "engagement.change_consent"],
    "provider": [
        *_OUTREACH_VIEW,
        "engagement.view_rule",
        "engagement.view_messagetemplate",
        "engagement.view_consent",
        "engagement.change_consent",
    ],
    "nurse": [
        *_OUTREACH_VIEW,
        "engagement.view_rule",
        "engagement.view_messagetemplate",
        "engagement.view_consent",
        "engagement.change_consent",
    ],
    "frontdesk": [*_OUTREACH_VIEW, "engagement.view_consent", "engagement.change_consent"],
}

# Default permissions per role: "app_label.codename". Missing codenames (an app not migrated yet)
# are skipped; extra permissions an administrator added by hand are kept.
ROLE_PERMISSIONS: dict[str, list[str]] = {
    Role.ADMIN: [
        "healthcrm.view_location",
        "healthcrm.add_location",
        "healthcrm.change_location",
        "healthcrm.delete_location",
        "healthcrm.view_membership",
        "healthcrm.add_membership",
        "healthcrm.change_membership",
        "healthcrm.view_organization",
        "healthcrm.change_organization",
        *_CLINICAL,
        "patients.delete_patient",
        # Administrators merge duplicate records (patients.merge).
        "patients.merge_patient",
        *_REGISTRATION,
        "compliance.view_accesslog",
        # Administrators manage care teams and the organization's plan templates, not clinical details.
        "patients.view_careteammember",
        "patients.add_careteammember",
        "patients.change_careteammember",
        *_TEMPLATES,
        # Scheduling is not clinical: administrators run calendars and practitioners.
        *_SCHEDULING,
        "patients.add_practitioner",
        "patients.change_practitioner",
        # Practitioners' availability (weekly windows, time off, extra hours).
        "patients.view_availability",
        "patients.add_availability",
        "patients.change_availability",
        "patients.delete_availability",
        "patients.view_availabilityexception",
        "patients.add_availabilityexception",
        "patients.change_availabilityexception",
        "patients.delete_availabilityexception",
    ],
    Role.PROVIDER: [*_CLINICAL, *_SCHEDULING, *_CARE, "healthcrm.view_location"],
    Role.NURSE: [*_CLINICAL, *_SCHEDULING, *_CARE, "healthcrm.view_location"],
    Role.COORDINATOR: [*_CLINICAL, *_SCHEDULING, *_CARE, *_TEMPLATES, *_REGISTRATION, "healthcrm.view_location"],
    Role.FRONTDESK: [
        *_CLINICAL,
        *_SCHEDULING,
        *_REGISTRATION,
        "patients.view_caretask",
        "patients.change_caretask",
        "healthcrm.view_location",
    ],
    Role.ANALYST: ["healthcrm.view_location"],
    Role.COMPLIANCE: [
        "compliance.view_accesslog",
        "healthcrm.view_membership",
        # Break-the-glass events (patients/breakglass/): listed and reviewed by compliance only.
        "patients.view_breakglassevent",
        "patients.change_breakglassevent",
        # Anomaly alerts (compliance/anomalies.py): listed and reviewed by compliance only.
        "compliance.view_anomalyalert",
        "compliance.change_anomalyalert",
    ],
}
# VIP and employee flags on records (alerts on every opening): set by administrators and compliance.
for _flagger in (Role.ADMIN, Role.COMPLIANCE):
    ROLE_PERMISSIONS[_flagger] = [*ROLE_PERMISSIONS[_flagger], "patients.flag_patient"]


for _role, _perms in _OUTREACH.items():
    ROLE_PERMISSIONS[_role] = [*ROLE_PERMISSIONS[_role], *_perms]

# Analytics (analytics/): aggregates (small cells suppressed) for the roles that run the clinic;
# patient lists (worklists, drill-downs, access-logged) only for the roles that see clinical data.
_AGGREGATES = "analytics.view_aggregates"
_WORKLISTS = "analytics.view_worklists"
for _role in (Role.ADMIN, Role.PROVIDER, Role.NURSE, Role.COORDINATOR, Role.ANALYST):
    ROLE_PERMISSIONS[_role] = [*ROLE_PERMISSIONS[_role], _AGGREGATES]
for _role in (Role.PROVIDER, Role.NURSE, Role.COORDINATOR):
    # The care-gap worklist's calls (engagement.CallLog) are logged by the roles that work it.
    ROLE_PERMISSIONS[_role] = [
        *ROLE_PERMISSIONS[_role],
        _WORKLISTS,
        "engagement.view_calllog",
        "engagement.add_calllog",
    ]
# Saved cohorts (analytics/cohorts.py): seen with the aggregates, defined by the roles that run outreach.
for _role in (Role.ADMIN, Role.PROVIDER, Role.NURSE, Role.COORDINATOR, Role.ANALYST):
    ROLE_PERMISSIONS[_role] = [*ROLE_PERMISSIONS[_role], "analytics.view_cohort"]
for _role in (Role.ADMIN, Role.COORDINATOR):
    ROLE_PERMISSIONS[_role] = [*ROLE_PERMISSIONS[_role], "analytics.add_cohort", "analytics.change_cohort"]


# Patient documents (patients/documents/): referrals and lab reports are clinical, so the clinical
# roles list, upload and download them; administrators see the list and delete misfiled ones.
for _role in (Role.PROVIDER, Role.NURSE, Role.COORDINATOR):
    ROLE_PERMISSIONS[_role] = [
        *ROLE_PERMISSIONS[_role],
        "patients.view_patientdocument",
        "patients.add_patientdocument",
    ]
ROLE_PERMISSIONS[Role.ADMIN] = [
    *ROLE_PERMISSIONS[Role.ADMIN],
    "patients.view_patientdocument",
    "patients.delete_patientdocument",
]

# Education (engagement/education/): the clinical roles browse the library, send items from the
# record and see what a patient opened (titles say what they are treated for); administrators and
# coordinators keep the library; the front desk and analysts see none of it (analysts see reach).
_EDUCATION_LIBRARY = ["engagement.view_educationitem", "engagement.view_educationversion"]
_EDUCATION_AUTHOR = [
    "engagement.add_educationitem",
    "engagement.change_educationitem",
    "engagement.add_educationversion",
    "engagement.change_educationversion",
]
for _role in (Role.PROVIDER, Role.NURSE, Role.COORDINATOR):
    ROLE_PERMISSIONS[_role] = [
        *ROLE_PERMISSIONS[_role],
        *_EDUCATION_LIBRARY,
        "engagement.view_educationsend",
        "engagement.add_educationsend",
    ]
for _role in (Role.ADMIN, Role.COORDINATOR):
    ROLE_PERMISSIONS[_role] = [*ROLE_PERMISSIONS[_role], *_EDUCATION_LIBRARY, *_EDUCATION_AUTHOR]
# Sessions (healthcrm.UserSession) and erasure (patients/erasure/): administrators and compliance
# officers see every member's sessions and end them; compliance handles erasure requests and holds.
for _role in (Role.ADMIN, Role.COMPLIANCE):
    ROLE_PERMISSIONS[_role] = [
        *ROLE_PERMISSIONS[_role],
        "healthcrm.view_usersession",
        "healthcrm.delete_usersession",
    ]
ROLE_PERMISSIONS[Role.COMPLIANCE] = [
    *ROLE_PERMISSIONS[Role.COMPLIANCE],
    "patients.view_erasurerequest",
    "patients.add_erasurerequest",
    "patients.change_erasurerequest",
    "patients.view_legalhold",
    "patients.add_legalhold",
    "patients.change_legalhold",
]


def sync_role_groups(sender: Any = None, using: str = "default", **kwargs: Any) -> None:
    """Create each role's group and add its default permissions (post_migrate receiver)."""
    from django.contrib.auth.models import Group, Permission

    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.using(using).get_or_create(name=group_name(role))
        wanted: list[Permission] = []
        for perm in perms:
            app_label, codename = perm.split(".", 1)
            wanted.extend(Permission.objects.using(using).filter(content_type__app_label=app_label, codename=codename))
        group.permissions.add(*wanted)


# Questionnaires (engagement/questionnaires/, #15): nurses and providers send them from the record
# and read the answers (clinical); coordinators read them; administrators and coordinators import
# definitions (no PHI).
for _role in (Role.PROVIDER, Role.NURSE, Role.COORDINATOR):
    ROLE_PERMISSIONS[_role] = [
        *ROLE_PERMISSIONS[_role],
        "engagement.view_questionnaire",
        "engagement.view_questionnaireresponse",
    ]
for _role in (Role.PROVIDER, Role.NURSE):
    ROLE_PERMISSIONS[_role] = [*ROLE_PERMISSIONS[_role], "engagement.add_questionnaireresponse"]
for _role in (Role.ADMIN, Role.COORDINATOR):
    ROLE_PERMISSIONS[_role] = [
        *ROLE_PERMISSIONS[_role],
        "engagement.view_questionnaire",
        "engagement.add_questionnaire",
        "engagement.change_questionnaire",
    ]
