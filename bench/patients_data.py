"""Synthetic data for bench_patients.py: bulk patients, a million appointments, a plaintext twin table.

Runs inside Django (app role, under RLS) except for the plaintext twin's DDL, which needs the owner.
"""

from __future__ import annotations

import io
import random
from datetime import date, timedelta
from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from patients.models import Appointment, Patient, Practitioner

BATCH = 5000
GIVEN = [
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Ava",
    "Elijah",
    "Sophia",
    "Mateo",
    "Isabella",
    "Lucas",
    "Mia",
    "Levi",
    "Amelia",
    "Ezra",
    "Harper",
    "Asher",
    "Evelyn",
    "James",
    "Luna",
    "Leo",
    "Camila",
    "Jack",
    "Gianna",
    "Omar",
    "Aaliyah",
    "Hiroshi",
    "Priya",
    "Chen",
    "Fatima",
    "Kwame",
    "José",
    "Zoë",
    "Renée",
    "Björn",
    "Siobhan",
]
FAMILY_STEMS = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Núñez",
    "Nguyen",
    "Okafor",
    "Kowalski",
    "Schmidt",
    "Rossi",
    "Yamamoto",
    "Haddad",
    "Ivanova",
    "O'Brien",
]
AREA_CODES = ["312", "773", "872", "206", "425", "253", "415", "628", "617", "857"]


def _owner_dsn() -> dict[str, Any]:
    db = settings.DATABASES["default"]
    return {
        "host": db["HOST"] or None,
        "port": db["PORT"] or None,
        "dbname": db["NAME"],
        "user": settings.DATABASE_OWNER["USER"],
        "password": settings.DATABASE_OWNER["PASSWORD"] or None,
    }


def _patients(organization: Organization, wanted: int, rng: random.Random, prefix: str) -> int:
    # Family names: stems with suffixes, so prefixes are as selective as in a real population.
    families = [f"{stem}{suffix}" for stem in FAMILY_STEMS for suffix in ("", "son", "ez", "ski", "er", "ini", "ley")]
    have = Patient.objects.count()
    number = have
    while number < wanted:
        batch = []
        for _ in range(min(BATCH, wanted - number)):
            number += 1
            given, family = rng.choice(GIVEN), rng.choice(families)
            batch.append(
                Patient(
                    mrn=f"{prefix}-{number:08d}",
                    given_name=given,
                    family_name=family,
                    date_of_birth=date(1930, 1, 1) + timedelta(days=rng.randint(0, 28_000)),
                    sex=rng.choice(("female", "male")),
                    phone_mobile=f"+1{AREA_CODES[number % len(AREA_CODES)]}555{number // len(AREA_CODES) % 10000:04d}",
                    email=f"{given}.{family}.{number}@example.org".lower(),
                    preferred_language="en",
                    preferred_channel="sms",
                )
            )
        Patient.objects.bulk_create(batch)
    return number - have


def _appointments(organization: Organization, wanted: int, practitioners: int) -> None:
    from encrypted_model_fields.fields import encrypt_str

    have = Appointment.objects.count()
    if have >= wanted:
        return
    existing = Practitioner.objects.count()
    Practitioner.objects.bulk_create(
        [Practitioner(display_name=f"Dr. Bench {n}") for n in range(existing, practitioners)]
    )
    empty_reason = encrypt_str("").decode()
    per = (wanted - have) // practitioners + 1
    with connection.cursor() as cursor:
        # Slot g of practitioner p: 30 minutes, 18 a working day, never overlapping (the exclusion
        # constraint checks every row). Spread from 2 years back to 1 year ahead.
        cursor.execute(
            """
            WITH ids AS (SELECT array_agg(id ORDER BY id) AS a FROM patients_patient WHERE organization_id = %(org)s),
                 docs AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM patients_practitioner
                          WHERE organization_id = %(org)s ORDER BY id LIMIT %(practitioners)s)
            INSERT INTO patients_appointment (organization_id, created_at, updated_at, patient_id, practitioner_id,
                kind, appointment_type, reason, starts_at, ends_at, status, telehealth_url, source_system, source_id,
                status_reason, confirmed_via)
            SELECT %(org)s, now(), now(), ids.a[1 + ((g * 7919 + docs.n * 104729) %% cardinality(ids.a))], docs.id,
                   'in_person', 'follow_up', %(reason)s, t.s, t.s + interval '30 minutes',
                   CASE WHEN t.s < now() THEN 'completed' ELSE 'booked' END, '', '', '', '', ''
            FROM ids, docs, generate_series(%(first)s, %(last)s) AS g,
                 LATERAL (SELECT date_trunc('day', now()) - interval '730 days'
                          + (g / 18) * interval '1 day' + interval '8 hours' + (g %% 18) * interval '30 minutes'
                          + (docs.n %% 3) * interval '0 minutes' AS s) AS t
            """,
            {
                "org": organization.pk,
                "practitioners": practitioners,
                "reason": empty_reason,
                "first": have // practitioners,
                "last": have // practitioners + per - 1,
            },
        )


def _plain_twin(organization: Organization) -> None:
    """A copy of the organization's patients with plaintext indexed columns: the baseline."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('bench_plain_patient') IS NOT NULL")
        exists = cursor.fetchone()[0]
    count = Patient.objects.count()
    if exists:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM bench_plain_patient WHERE organization_id = %s", [organization.pk])
            if cursor.fetchone()[0] == count:
                return
    plain = io.StringIO()
    for p in Patient.objects.only("id", "mrn", "phone_mobile", "date_of_birth", "given_name", "family_name").iterator(
        chunk_size=5000
    ):
        row = [
            str(p.pk),
            p.mrn,
            p.phone_mobile,
            p.date_of_birth.isoformat(),
            p.given_name.casefold(),
            p.family_name.casefold(),
        ]
        plain.write("\t".join(row) + "\n")
    with psycopg.connect(**_owner_dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT set_config('app.current_organization', %s, true)", [str(organization.pk)])
        cur.execute("DROP TABLE IF EXISTS bench_plain_patient")
        cur.execute(
            "CREATE TABLE bench_plain_patient AS SELECT * FROM patients_patient WHERE organization_id = %s",
            [organization.pk],
        )
        cur.execute(
            "CREATE TEMP TABLE plain (id bigint, mrn_plain text, phone_plain text, dob_plain text,"
            " given_plain text, family_plain text)"
        )
        with cur.copy("COPY plain FROM STDIN") as copy:
            copy.write(plain.getvalue())
        cur.execute(
            "ALTER TABLE bench_plain_patient ADD COLUMN mrn_plain text, ADD COLUMN phone_plain text,"
            " ADD COLUMN dob_plain text, ADD COLUMN given_plain text, ADD COLUMN family_plain text"
        )
        cur.execute(
            "UPDATE bench_plain_patient b SET mrn_plain = p.mrn_plain, phone_plain = p.phone_plain,"
            " dob_plain = p.dob_plain, given_plain = p.given_plain, family_plain = p.family_plain"
            " FROM plain p WHERE p.id = b.id"
        )
        for column, opclass in (
            ("mrn_plain", ""),
            ("phone_plain", ""),
            ("dob_plain", ""),
            ("given_plain", " text_pattern_ops"),
            ("family_plain", " text_pattern_ops"),
        ):
            cur.execute(f"CREATE INDEX ON bench_plain_patient (organization_id, {column}{opclass})")
        cur.execute("CREATE INDEX ON bench_plain_patient (organization_id, created_at DESC, id DESC) WHERE is_active")
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM (ANALYZE) bench_plain_patient")  # same visibility map as the real table
        cur.execute(f'GRANT SELECT ON bench_plain_patient TO "{settings.APP_DATABASE_USER}"')


def ensure_data(*, patients: int, appointments: int) -> dict[str, Any]:
    rng = random.Random(2026)
    if not Organization.objects.filter(slug="northside").exists():
        call_command("seed_demo", "--patients", "0", verbosity=0)
    main = Organization.objects.get(slug="northside")
    other = Organization.objects.get(slug="lakeside")
    share = (0.9, 0.1)
    for organization, count, prefix, part in (
        (main, patients, "NB", share[0]),
        (other, max(100, patients // 50), "LB", share[1]),
    ):
        with organization_context(organization):
            _patients(organization, count, rng, prefix)
            _appointments(organization, int(appointments * part), practitioners=200 if part > 0.5 else 40)
    # VACUUM ANALYZE needs the owner (the app role would be skipped with a warning). Autovacuum
    # would get there after a bulk load; the bench should not measure stale statistics or an
    # unset visibility map (index-only scans would visit the heap anyway).
    with psycopg.connect(**_owner_dsn(), autocommit=True) as conn:
        for table in (
            "patients_patient",
            "patients_patientnameprefix",
            "patients_appointment",
            "patients_practitioner",
        ):
            conn.execute(f"VACUUM (ANALYZE) {table}")
    with organization_context(main):
        _plain_twin(main)
        total = Patient.objects.count()
    appointments_total = 0
    for organization in (main, other):
        with organization_context(organization):
            appointments_total += Appointment.objects.count()
    return {"slug": main.slug, "patients": total, "appointments_total": appointments_total}
