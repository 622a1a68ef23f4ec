"""The standard care plan templates an organization starts with (seed_demo installs them; the
admin edits them). Codes: SNOMED CT for conditions, LOINC for measurements, UCUM for units."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from patients.models import (
    BLOOD_PRESSURE,
    DIASTOLIC,
    SYSTOLIC,
    CarePlanTemplate,
    GoalTemplate,
    InterventionTemplate,
    TaskTemplate,
)

HBA1C = "4548-4"
T2DM = "44054006"
HYPERTENSION = "38341003"

DEFAULT_TEMPLATES: list[dict[str, Any]] = [
    {
        "code": "t2dm",
        "name": "Type 2 diabetes",
        "condition_codes": [T2DM, "E11.9"],
        "review_interval_days": 90,
        "goals": [
            ("HbA1c below 7 %", HBA1C, [{"component": "", "comparator": "<", "value": "7"}], "%", 90),
            (
                "Blood pressure below 140/90",
                BLOOD_PRESSURE,
                [
                    {"component": SYSTOLIC, "comparator": "<", "value": "140"},
                    {"component": DIASTOLIC, "comparator": "<", "value": "90"},
                ],
                "mm[Hg]",
                90,
            ),
        ],
        "interventions": ["Diabetes self-management education", "Annual retinal and foot exam", "Medication review"],
        "tasks": [
            ("Order HbA1c lab", "nurse", 7, "routine"),
            ("Schedule 3-month follow-up visit", "frontdesk", 14, "routine"),
            ("Review glucose log with patient", "coordinator", 30, "routine"),
        ],
    },
    {
        "code": "hypertension",
        "name": "Hypertension",
        "condition_codes": [HYPERTENSION, "I10"],
        "review_interval_days": 90,
        "goals": [
            (
                "Blood pressure below 140/90",
                BLOOD_PRESSURE,
                [
                    {"component": SYSTOLIC, "comparator": "<", "value": "140"},
                    {"component": DIASTOLIC, "comparator": "<", "value": "90"},
                ],
                "mm[Hg]",
                90,
            ),
        ],
        "interventions": ["Home blood pressure monitoring", "Low-sodium diet counselling"],
        "tasks": [
            ("Blood pressure check", "nurse", 14, "routine"),
            ("Schedule follow-up visit", "frontdesk", 21, "routine"),
        ],
    },
    {
        "code": "post-discharge",
        "name": "Post-discharge follow-up",
        "condition_codes": [],
        "review_interval_days": 30,
        "goals": [],
        "interventions": ["Medication reconciliation", "Transitional care visit within 7 days"],
        "tasks": [
            ("Call patient within 2 business days of discharge", "coordinator", 2, "urgent"),
            ("Reconcile discharge medications", "nurse", 3, "urgent"),
            ("Book transitional care visit", "frontdesk", 5, "urgent"),
        ],
    },
    {
        "code": "prenatal",
        "name": "Prenatal care",
        "condition_codes": ["77386006"],
        "review_interval_days": 28,
        "goals": [
            (
                "Blood pressure below 140/90",
                BLOOD_PRESSURE,
                [
                    {"component": SYSTOLIC, "comparator": "<", "value": "140"},
                    {"component": DIASTOLIC, "comparator": "<", "value": "90"},
                ],
                "mm[Hg]",
                280,
            ),
        ],
        "interventions": ["Prenatal vitamins", "Glucose tolerance screening at 24-28 weeks"],
        "tasks": [
            ("Schedule first prenatal visit", "frontdesk", 7, "routine"),
            ("Order prenatal lab panel", "nurse", 10, "routine"),
        ],
    },
]


@transaction.atomic
def care_plan_templates_install() -> list[CarePlanTemplate]:
    """Create the standard templates the current organization does not have yet (by code); idempotent."""
    existing = set(CarePlanTemplate.objects.values_list("code", flat=True))
    created = []
    for spec in DEFAULT_TEMPLATES:
        if spec["code"] in existing:
            continue
        template = CarePlanTemplate.objects.create(
            code=spec["code"],
            name=spec["name"],
            condition_codes=spec["condition_codes"],
            review_interval_days=spec["review_interval_days"],
        )
        GoalTemplate.objects.bulk_create(
            GoalTemplate(template=template, description=d, observation_code=c, targets=t, unit=u, due_in_days=days)
            for d, c, t, u, days in spec["goals"]
        )
        InterventionTemplate.objects.bulk_create(
            InterventionTemplate(template=template, description=d) for d in spec["interventions"]
        )
        TaskTemplate.objects.bulk_create(
            TaskTemplate(template=template, title=t, assignee_role=r, due_in_days=days, priority=p)
            for t, r, days, p in spec["tasks"]
        )
        created.append(template)
    return created
