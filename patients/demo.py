"""Patients' demo data: synthetic patients with plausible clinical histories, a calendar of visits,
care teams and care plans. Registered with the core's demo registry; seed_demo orders the steps.

Everything here is made up (Faker names and addresses, fictional 555-01xx phone numbers,
example.org emails, plausible but invented clinical histories). Bulk paths keep
`--patients 100000` to minutes; bulk inserts are not individually audited.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from healthcrm import demo
from healthcrm.demo import DemoOrganization, DemoTenant
from healthcrm.models import Location
from healthcrm.tenancy import require_current_organization
from patients.models import (
    ACTIVE_STATUSES,
    BLOOD_PRESSURE,
    Allergy,
    Appointment,
    AppointmentKind,
    AppointmentType,
    Availability,
    Channel,
    Condition,
    Immunization,
    Medication,
    Observation,
    Patient,
    Practitioner,
    Sex,
)
from patients.scheduling.telehealth import telehealth_join_url
from patients.services import blood_pressure_components

BATCH = 2000


@demo.register("patients")
def seed_patients(tenant: DemoTenant) -> list[str]:
    """`--patients` synthetic patients, each with a clinical summary."""
    run = tenant.run
    created = _patients(tenant.spec, run.patients, run.rng, run.fake)
    tenant.state["patients_added"] = created
    return [f"{created} patients"]


@demo.register("appointments")
def seed_appointments(tenant: DemoTenant) -> list[str]:
    """Practitioners and a calendar of past and coming visits for the patients just added."""
    run = tenant.run
    booked = schedule_demo(tenant.spec, run.users, tenant.state["patients_added"], run.rng, run.fake)
    return [f"{booked} appointments"]


@demo.register("care")
def seed_care(tenant: DemoTenant) -> list[str]:
    """Care plan templates, care teams, care plans, tasks and notes for the patients just added."""
    run = tenant.run
    plans, tasks = coordinate_demo(tenant.spec, run.users, tenant.state["patients_added"], run.rng)
    return [f"{plans} care plans", f"{tasks} tasks"]


@transaction.atomic
def _patients(spec: DemoOrganization, count: int, rng: random.Random, fake: Any) -> int:
    start = Patient.objects.count()
    today = date.today()
    batch: list[Patient] = []
    for number in range(start + 1, start + count + 1):
        sex = rng.choice((Sex.FEMALE, Sex.MALE, Sex.FEMALE, Sex.MALE, Sex.OTHER))
        given = (
            fake.first_name_female()
            if sex == Sex.FEMALE
            else fake.first_name_male()
            if sex == Sex.MALE
            else fake.first_name()
        )
        family = fake.last_name()
        phone = f"+1{rng.choice(spec.area_codes)}55501{rng.randint(0, 99):02d}" if rng.random() < 0.92 else ""
        email = f"{given}.{family}.{number}@example.org".lower() if rng.random() < 0.7 else ""
        spanish = rng.random() < 0.15
        window = rng.random() < 0.4
        batch.append(
            Patient(
                mrn=f"{spec.mrn_prefix}-{number:07d}",
                given_name=given,
                family_name=family,
                date_of_birth=today - timedelta(days=rng.randint(18 * 365, 95 * 365)),
                sex=sex,
                # 555-0100..0199 are reserved for fiction.
                phone_mobile=phone,
                email=email,
                preferred_language="es" if spanish else "en",
                preferred_channel=(
                    Channel.SMS
                    if phone and rng.random() < 0.7
                    else Channel.EMAIL
                    if email
                    else Channel.PHONE
                    if phone
                    else Channel.NONE
                ),
                contact_window_start=clock_time(rng.choice((8, 9, 10))) if window else None,
                contact_window_end=clock_time(rng.choice((17, 18, 19))) if window else None,
                address_line1=f"{rng.randint(1, 9999)} {fake.street_name()}",
                address_line2=f"Apt {rng.randint(1, 40)}" if rng.random() < 0.2 else "",
                address_city=fake.city(),
                address_state=fake.state_abbr(),
                address_postal_code=fake.postcode(),
                address_country="US",
                emergency_contact_name=f"{fake.first_name()} {family}" if rng.random() < 0.8 else "",
                emergency_contact_relationship=rng.choice(("spouse", "parent", "child", "sibling", "friend")),
                emergency_contact_phone=f"+1{rng.choice(spec.area_codes)}55501{rng.randint(0, 99):02d}",
            )
        )
        if len(batch) >= BATCH:
            _with_history(Patient.objects.bulk_create(batch), rng)
            batch.clear()
    if batch:
        _with_history(Patient.objects.bulk_create(batch), rng)
    return count


def _with_history(patients: list[Patient], rng: random.Random) -> None:
    """Give each new patient a plausible (synthetic) clinical summary, in a few bulk inserts."""
    rows: dict[type[Any], list[Any]] = {Condition: [], Medication: [], Allergy: [], Observation: [], Immunization: []}
    today = date.today()
    now = datetime.now(UTC)
    for patient in patients:
        problems = rng.sample(CONDITIONS, k=rng.choices((0, 1, 2, 3), weights=(35, 35, 20, 10))[0])
        for code, display, drug in problems:
            rows[Condition].append(
                Condition(
                    patient=patient,
                    code=code,
                    display=display,
                    clinical_status="active",
                    onset_date=today - timedelta(days=rng.randint(200, 5000)),
                )
            )
            rxnorm, name, dose, schedule = drug
            rows[Medication].append(
                Medication(
                    patient=patient,
                    code=rxnorm,
                    name=name,
                    dose_text=dose,
                    schedule_text=schedule,
                    start_date=today - timedelta(days=rng.randint(60, 1500)),
                    refill_due=today + timedelta(days=rng.randint(-5, 60)),
                    status="active",
                )
            )
        if rng.random() < 0.2:
            substance, code, reaction, criticality = rng.choice(ALLERGIES)
            rows[Allergy].append(
                Allergy(
                    patient=patient,
                    substance_display=substance,
                    substance_code=code,
                    reaction=reaction,
                    criticality=criticality,
                )
            )
        diabetic = any(code == "44054006" for code, _, _ in problems)
        hypertensive = any(code == "38341003" for code, _, _ in problems)
        weight = Decimal(rng.randint(50, 120))
        for _ in range(rng.randint(1, 4)):
            when = now - timedelta(days=rng.randint(0, 730), hours=rng.randint(0, 8))
            systolic = rng.randint(125, 165) if hypertensive else rng.randint(100, 138)
            diastolic = min(systolic - 30, rng.randint(70, 98) if hypertensive else rng.randint(60, 86))
            rows[Observation].append(
                _observation(
                    patient,
                    BLOOD_PRESSURE,
                    "Blood pressure panel",
                    "vital-signs",
                    when,
                    unit="mm[Hg]",
                    components=blood_pressure_components(Decimal(systolic), Decimal(diastolic)),
                )
            )
            rows[Observation].append(
                _observation(
                    patient,
                    "29463-7",
                    "Body weight",
                    "vital-signs",
                    when,
                    unit="kg",
                    value=weight + Decimal(rng.randint(-30, 30)) / 10,
                )
            )
        if diabetic:
            for _ in range(rng.randint(2, 4)):
                when = now - timedelta(days=rng.randint(0, 730))
                rows[Observation].append(
                    _observation(
                        patient,
                        "4548-4",
                        "Hemoglobin A1c/Hemoglobin.total in Blood",
                        "laboratory",
                        when,
                        unit="%",
                        value=Decimal(rng.randint(58, 98)) / 10,
                        low=Decimal("4.0"),
                        high=Decimal("5.6"),
                    )
                )
        for year_back in range(2):
            if rng.random() < 0.55:
                cvx, display = rng.choice(
                    (("141", "Influenza, seasonal, injectable"), ("158", "Influenza, injectable, quadrivalent"))
                )
                rows[Immunization].append(
                    Immunization(
                        patient=patient,
                        vaccine_code=cvx,
                        display=display,
                        status="completed",
                        occurrence_date=date(today.year - year_back - 1, rng.randint(9, 12), rng.randint(1, 28)),
                        lot_number=f"FL{rng.randint(1000, 9999)}",
                    )
                )
    for model, objs in rows.items():
        model.objects.bulk_create(objs, batch_size=BATCH)


def _observation(
    patient: Patient,
    code: str,
    display: str,
    category: str,
    when: datetime,
    *,
    unit: str,
    value: Decimal | None = None,
    low: Decimal | None = None,
    high: Decimal | None = None,
    components: list[dict[str, str]] | None = None,
) -> Observation:
    observation = Observation(
        patient=patient,
        code=code,
        display=display,
        category=category,
        effective_at=when,
        unit=unit,
        value_quantity=value,
        reference_low=low,
        reference_high=high,
        components=components or [],
    )
    # bulk_create skips save(): compute the flag here.
    observation.abnormal_flag = observation.compute_abnormal_flag()
    return observation


# Synthetic problem list: SNOMED CT condition, with the RxNorm medication that usually treats it.
CONDITIONS = [
    (
        "44054006",
        "Type 2 diabetes mellitus",
        ("860975", "Metformin 500 MG (24 hr extended release)", "500 mg", "Once daily with the evening meal"),
    ),
    ("38341003", "Hypertensive disorder", ("314076", "Lisinopril 10 MG Oral Tablet", "10 mg", "Once daily")),
    ("195967001", "Asthma", ("745752", "Albuterol 0.09 MG/ACTUAT inhaler", "2 puffs", "Every 4-6 hours as needed")),
    ("55822004", "Hyperlipidemia", ("617310", "Atorvastatin 20 MG Oral Tablet", "20 mg", "Once daily at bedtime")),
]
ALLERGIES = [
    ("Penicillin", "764146007", "Hives", "high"),
    ("Peanut", "762952008", "Swelling of the lips", "high"),
    ("Latex", "111088007", "Contact dermatitis", "low"),
    ("Sulfonamide", "387406002", "Rash", "low"),
    ("Shellfish", "227037002", "Itching", "unable-to-assess"),
]


# -- Practitioners and appointments ------------------------------------------------------------

SLOT_MINUTES = 30
WORKDAY = (8, 17)  # local hours
DAYS_BACK, DAYS_AHEAD = 180, 30
APPOINTMENTS_PER_PATIENT = 2.5


def schedule_demo(
    spec: DemoOrganization, users: dict[str, Any], patients_added: int, rng: random.Random, fake: Any
) -> int:
    """Practitioners (the provider user and synthetic clinicians) and a calendar of past and coming visits.

    Slots are laid out per practitioner without overlap (the database refuses double booking).
    """
    organization = require_current_organization()
    zone = organization.zone
    if patients_added == 0:
        return 0
    patient_ids = list(Patient.objects.order_by("-id").values_list("id", flat=True)[:patients_added])
    wanted = max(4, patients_added // 400)
    practitioners = list(Practitioner.objects.filter(is_active=True))
    if not any(p.user_id for p in practitioners):
        provider = users[f"provider@{spec.slug}.example"]
        practitioners.append(
            Practitioner.objects.create(
                display_name=f"Dr. {provider.first_name} Provider", user=provider, specialty="Family medicine"
            )
        )
    new = [
        Practitioner(
            display_name=f"Dr. {fake.first_name()} {fake.last_name()}",
            specialty=rng.choice(
                ("Family medicine", "Internal medicine", "Nurse practitioner", "Endocrinology", "Cardiology")
            ),
        )
        for _ in range(max(0, wanted - len(practitioners)))
    ]
    practitioners += Practitioner.objects.bulk_create(new)
    locations = list(Location.objects.filter(is_active=True))
    today = timezone.now().astimezone(zone).date()
    days = [
        today + timedelta(days=n)
        for n in range(-DAYS_BACK, DAYS_AHEAD + 1)
        if (today + timedelta(days=n)).weekday() < 5
    ]
    slots_per_day = (WORKDAY[1] - WORKDAY[0]) * 60 // SLOT_MINUTES
    total_slots = len(days) * slots_per_day * len(practitioners)
    share = min(1.0, APPOINTMENTS_PER_PATIENT * len(patient_ids) / total_slots)
    now = timezone.now()
    types = list(AppointmentType.values)
    batch: list[Appointment] = []
    busy: set[tuple[int, datetime]] = set()  # (patient, start) of the visits that hold the patient's time
    count = 0
    # Each practitioner works weekdays in the demo's working day at one location: their availability.
    with_hours = set(Availability.objects.values_list("practitioner_id", flat=True))
    hours: list[Availability] = []
    for practitioner in practitioners:
        location = rng.choice(locations) if locations else None
        if location is not None and practitioner.pk not in with_hours:
            hours += [
                Availability(
                    practitioner=practitioner,
                    location=location,
                    weekday=weekday,
                    start=clock_time(WORKDAY[0]),
                    end=clock_time(WORKDAY[1]),
                )
                for weekday in range(5)
            ]
        for day in days:
            for slot in range(slots_per_day):
                if rng.random() >= share:
                    continue
                starts = datetime.combine(day, clock_time(WORKDAY[0]), tzinfo=zone) + timedelta(
                    minutes=slot * SLOT_MINUTES
                )
                past = starts < now
                if past:
                    status = rng.choices(("completed", "no_show", "cancelled"), (80, 8, 12))[0]
                else:
                    status = rng.choices(("booked", "confirmed", "cancelled"), (60, 35, 5))[0]
                telehealth = rng.random() < 0.2
                patient_id = rng.choice(patient_ids)
                if status in ACTIVE_STATUSES:
                    # Slots are aligned: the same start is the only overlap (appointment_patient_no_overlap).
                    if (patient_id, starts) in busy:
                        continue
                    busy.add((patient_id, starts))
                batch.append(
                    Appointment(
                        patient_id=patient_id,
                        practitioner=practitioner,
                        location=None if telehealth else location,
                        kind=AppointmentKind.TELEHEALTH if telehealth else AppointmentKind.IN_PERSON,
                        appointment_type=rng.choice(types),
                        starts_at=starts,
                        ends_at=starts + timedelta(minutes=SLOT_MINUTES),
                        status=status,
                        status_changed_at=starts,
                        telehealth_url=telehealth_join_url() if telehealth else "",
                        reason=rng.choice(("", "", "Follow-up", "Medication review", "Blood pressure check")),
                    )
                )
                if len(batch) >= BATCH:
                    Appointment.objects.bulk_create(batch)
                    count += len(batch)
                    batch.clear()
    if batch:
        Appointment.objects.bulk_create(batch)
        count += len(batch)
    Availability.objects.bulk_create(hours)
    return count


# -- Care coordination -------------------------------------------------------------------------

NOTES = (
    "Prefers morning calls; daughter helps with medications.",
    "Discussed diet and exercise; patient motivated.",
    "Needs transportation support for visits.",
    "Reports good adherence, occasional missed evening dose.",
)


def coordinate_demo(
    spec: DemoOrganization, users: dict[str, Any], patients_added: int, rng: random.Random
) -> tuple[int, int]:
    """Templates, care teams, care plans (diabetes, hypertension) for patients with those conditions,
    their goals, interventions and tasks (some overdue), and notes: bulk inserts, not audited."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import UserObjectPermission

    from patients.care.defaults import HYPERTENSION, T2DM, care_plan_templates_install
    from patients.models import (
        CarePlan,
        CarePlanActivity,
        CarePlanTemplate,
        CareTask,
        CareTeamMember,
        Goal,
        Intervention,
        PatientNote,
    )

    care_plan_templates_install()
    if patients_added == 0:
        return 0, 0
    templates = {t.code: t for t in CarePlanTemplate.objects.prefetch_related("goals", "interventions", "tasks")}
    by_condition = {T2DM: templates["t2dm"], HYPERTENSION: templates["hypertension"]}
    patient_ids = list(Patient.objects.order_by("-id").values_list("id", flat=True)[:patients_added])
    wanted = Condition.objects.filter(patient_id__in=patient_ids, code__in=list(by_condition)).values_list(
        "patient_id", "code"
    )
    staff = {role: users[f"{role}@{spec.slug}.example"] for role in ("provider", "nurse", "coordinator")}
    today = timezone.localdate()
    zone_today = timezone.now()
    team: list[Any] = []
    for patient_id in patient_ids:
        if rng.random() < 0.5:
            for role, user in staff.items():
                if rng.random() < 0.6:
                    team.append(CareTeamMember(patient_id=patient_id, user=user, team_role=role))
    CareTeamMember.objects.bulk_create(team, batch_size=BATCH, ignore_conflicts=True)
    # Object permissions of the team, in bulk too (guardian's assign_perm is one row per call).
    content_type = ContentType.objects.get_for_model(Patient)
    perms = list(Permission.objects.filter(content_type=content_type, codename__in=["view_patient", "change_patient"]))
    UserObjectPermission.objects.bulk_create(
        [
            UserObjectPermission(user=m.user, permission=p, content_type=content_type, object_pk=str(m.patient_id))
            for m in team
            for p in perms
        ],
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    plans: list[Any] = []
    for patient_id, code in wanted:
        if rng.random() < 0.2:
            continue  # a fifth have no plan yet: analytics compares plan patients with them
        template = by_condition[code]
        started = today - timedelta(days=rng.randint(0, 200))
        plans.append(
            CarePlan(
                patient_id=patient_id,
                template=template,
                title=template.name,
                status="active",
                review_date=started + timedelta(days=template.review_interval_days),
                started_by=staff["provider"],
            )
        )
    plans = CarePlan.objects.bulk_create(plans, batch_size=BATCH)
    # A plan began on its start day, not at seeding time (auto_now_add): analytics measures treatment
    # effectiveness from a plan's creation. One UPDATE per start day (at most 201).
    by_start: dict[date, list[int]] = {}
    for plan in plans:
        by_start.setdefault(plan.review_date - timedelta(days=plan.template.review_interval_days), []).append(plan.pk)
    for start_day, ids in by_start.items():
        began = timezone.make_aware(datetime.combine(start_day, clock_time(9)))
        CarePlan.objects.filter(pk__in=ids).update(created_at=began)
    goals: list[Any] = []
    interventions: list[Any] = []
    tasks: list[Any] = []
    activity: list[Any] = []
    for plan in plans:
        template = plan.template
        start = plan.review_date - timedelta(days=template.review_interval_days)
        for goal in template.goals.all():
            goals.append(
                Goal(
                    care_plan=plan,
                    description=goal.description,
                    observation_code=goal.observation_code,
                    targets=goal.targets,
                    unit=goal.unit,
                    due_date=start + timedelta(days=goal.due_in_days),
                )
            )
        for intervention in template.interventions.all():
            interventions.append(Intervention(care_plan=plan, description=intervention.description))
        for task in template.tasks.all():
            due = start + timedelta(days=task.due_in_days)
            done = due < today and rng.random() < 0.7  # the rest of the past ones are overdue
            tasks.append(
                CareTask(
                    patient_id=plan.patient_id,
                    care_plan=plan,
                    title=task.title,
                    assignee_role=task.assignee_role,
                    due_date=due,
                    priority=task.priority,
                    status="done" if done else "open",
                    completed_at=zone_today if done else None,
                    completed_by=staff.get(task.assignee_role) if done else None,
                )
            )
        activity.append(
            CarePlanActivity(
                patient_id=plan.patient_id,
                care_plan=plan,
                change="started",
                actor=staff["provider"],
                actor_label=staff["provider"].get_username(),
            )
        )
    Goal.objects.bulk_create(goals, batch_size=BATCH)
    Intervention.objects.bulk_create(interventions, batch_size=BATCH)
    CareTask.objects.bulk_create(tasks, batch_size=BATCH)
    CarePlanActivity.objects.bulk_create(activity, batch_size=BATCH)
    notes = [
        PatientNote(
            patient_id=patient_id,
            author=staff["nurse"],
            author_label=staff["nurse"].get_username(),
            body=rng.choice(NOTES),
            # From the id, not the seeded generator: a draw here would shift every later step's data.
            note_type=("general", "progress", "phone_call", "outreach")[patient_id % 4],
            # Signed like a finished note (drafts are only the author's own work in progress).
            signed_at=zone_today,
            signed_by=staff["nurse"],
            signed_by_label=staff["nurse"].get_username(),
        )
        for patient_id in patient_ids
        if rng.random() < 0.3
    ]
    PatientNote.objects.bulk_create(notes, batch_size=BATCH)
    return len(plans), len(tasks)
