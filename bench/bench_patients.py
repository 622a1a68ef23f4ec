"""Patient search, list and page timings at clinic-network scale (issue #3's numbers).

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/healthcrm REDIS_URL=redis://127.0.0.1:6379/0 \
        .venv/bin/python bench/bench_patients.py [--patients 100000] [--appointments 1000000] [--samples 300]

It works in its own database (DATABASE_URL's name + "_bench"), created and migrated on the first
run and reused after (`--fresh` starts over). Data: `--patients` synthetic patients in one
organization (and 2 % of that in the other), `--appointments` spread over both, non-overlapping
per practitioner. All data is synthetic.

What it prints, per search kind (MRN, phone, date of birth, name prefix): server-side p50/p95 of
`patient_list(query=...)` evaluated for one page (25 rows, decrypted), of the same query against
plaintext indexed columns of a copy of the table built in the same run (the ratio is what the
blind index costs), and a decrypt-and-scan baseline (what the blind index saves). Then p50/p95
of the patient list page and the patient page through Django's full request stack (middleware,
RLS transaction, access log, template), with their query counts. Times are wall-clock on this
machine, in-process (no network, no browser).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _bench_url(url: str) -> str:
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "healthcrm"
    return urlunsplit(parts._replace(path="/" + (name if name.endswith("_bench") else f"{name}_bench")))


def _manage(*args: str, owner: bool = False) -> None:
    env = dict(os.environ, DATABASE_LOGIN="owner" if owner else "app")
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p95 * 1000


def _as_typed(e164: str) -> str:
    """+13125550123 -> (312) 555-0123"""
    digits = e164[-10:]
    return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"


def _timed(fn, inputs):  # type: ignore[no-untyped-def]
    samples = []
    for value in inputs:
        started = time.perf_counter()
        fn(value)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--fresh", action="store_true", help="drop the bench database first")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = _bench_url(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/healthcrm")
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "healthcrm.settings")
    if args.fresh:
        import psycopg

        parts = urlsplit(os.environ["DATABASE_URL"])
        with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')
    _manage("db_bootstrap")
    _manage("migrate", "--noinput", owner=True)

    import django

    django.setup()
    from django.db import connection
    from django.test import Client

    from bench.patients_data import ensure_data
    from healthcrm.crypto import NAME_PREFIX_MAX, normalize_name, normalize_phone, prefix_digest
    from healthcrm.models import Organization
    from healthcrm.pagination import paginate_by_pk
    from healthcrm.tenancy import organization_context
    from patients.models import Patient
    from patients.selectors import patient_list

    started = time.perf_counter()
    facts = ensure_data(patients=args.patients, appointments=args.appointments)
    print(
        f"data: {facts['patients']} patients in {facts['slug']}, {facts['appointments_total']} appointments in "
        f"all organizations (ready in {time.perf_counter() - started:.0f} s)"
    )

    rng = random.Random(7)
    organization = Organization.objects.get(slug=facts["slug"])
    with organization_context(organization):
        sample = list(Patient.objects.order_by("?").values_list("pk", flat=True)[: args.samples])
        people = {p.pk: p for p in Patient.objects.filter(pk__in=sample)}
        org = organization.pk
        blind_index = Patient._meta.get_field

        def prefix_sql(value: str) -> tuple[str, list]:
            digest = prefix_digest(normalize_name(value)[:NAME_PREFIX_MAX], org)
            return (
                "id IN (SELECT patient_id FROM patients_patientnameprefix WHERE organization_id = %s AND digest = %s)",
                [org, digest],
            )

        # label: (values as typed, blind predicate builder, plaintext predicate builder)
        kinds = {
            "MRN": (
                [people[pk].mrn for pk in sample],
                lambda v: ("mrn_bidx = %s", [blind_index("mrn_bidx").digest(v, org)]),
                lambda v: ("mrn_plain = %s", [v]),
            ),
            # As staff type them; both paths normalize to E.164 (the plaintext column holds E.164 too).
            "phone": (
                [_as_typed(people[pk].phone_mobile) for pk in sample],
                lambda v: ("phone_mobile_bidx = %s", [blind_index("phone_mobile_bidx").digest(v, org)]),
                lambda v: ("phone_plain = %s", [normalize_phone(v)]),
            ),
            "date of birth": (
                [people[pk].date_of_birth.isoformat() for pk in sample],
                lambda v: ("date_of_birth_bidx = %s", [blind_index("date_of_birth_bidx").digest(v, org)]),
                lambda v: ("dob_plain = %s", [v]),
            ),
            "name prefix": (
                [people[pk].family_name[: rng.randint(3, 5)] for pk in sample],
                prefix_sql,
                lambda v: ("(given_plain LIKE %s OR family_plain LIKE %s)", [v.casefold() + "%"] * 2),
            ),
        }
        print("\nOne page (25 rows, decrypted) per search: the page's ids, then its rows; the same two")
        print("queries on the blind indexes and on plaintext indexed columns of a twin table")
        print(
            f"{'search':<14} {'app p95':>9} {'blind p50':>10} {'blind p95':>10} {'plain p50':>10} "
            f"{'plain p95':>10} {'p95 ratio':>10} {'rows':>6}"
        )
        for label, (values, blind_predicate, plain_predicate) in kinds.items():
            rows: list[int] = []

            def app(value):  # type: ignore[no-untyped-def]
                # What the list view runs: the page's ids first, then those rows (paginate_by_pk).
                paginate_by_pk(patient_list(query=value), 1, 25)

            def query(table, build):  # type: ignore[no-untyped-def]
                def run(value, rows=rows):  # type: ignore[no-untyped-def]
                    # The same two steps on either table: ids from the index, then the 25 rows.
                    predicate, params = build(value)
                    with connection.cursor() as cursor:
                        cursor.execute(
                            f"SELECT id FROM {table} WHERE organization_id = %s AND is_active AND {predicate} "
                            "ORDER BY created_at DESC, id DESC LIMIT 25",
                            [org, *params],
                        )
                        ids = [row[0] for row in cursor.fetchall()]
                    found = list(Patient.objects.raw(f"SELECT * FROM {table} WHERE id = ANY(%s)", [ids]))
                    rows.append(len(found))

                return run

            blind, plain = query("patients_patient", blind_predicate), query("bench_plain_patient", plain_predicate)
            for fn in (app, blind, plain):  # warm caches and plans
                _timed(fn, values[:20])
            rows.clear()
            _, a95 = _percentiles(_timed(app, values))
            b50, b95 = _percentiles(_timed(blind, values))
            p50, p95 = _percentiles(_timed(plain, values))
            print(
                f"{label:<14} {a95:>7.2f}ms {b50:>8.2f}ms {b95:>8.2f}ms {p50:>8.2f}ms {p95:>8.2f}ms "
                f"{b95 / p95:>9.2f}x {statistics.mean(rows):>6.1f}"
            )

        # Issue #11's searches (app path only: the twin has no equivalent plaintext query).
        print("\nThe list view's search (patient_list, one page) for issue #11's entries")
        print(f"{'search':<26} {'app p50':>9} {'app p95':>9} {'rows':>6}")
        app_only = {
            "full name (given family)": [f"{people[pk].given_name} {people[pk].family_name}" for pk in sample],
            "full name (family, given)": [f"{people[pk].family_name}, {people[pk].given_name}" for pk in sample],
            "given name + initial": [f"{people[pk].given_name} {people[pk].family_name[0]}" for pk in sample],
            "two prefixes (3-5 letters)": [
                f"{people[pk].given_name[: rng.randint(3, 5)]} {people[pk].family_name[: rng.randint(3, 5)]}"
                for pk in sample
            ],
            "MRN number (digits only)": [people[pk].mrn.split("-")[-1].lstrip("0") for pk in sample],
            "phone, last 7 digits": [people[pk].phone_mobile[-7:] for pk in sample],
        }
        for label, values in app_only.items():
            found: list[int] = []

            def app_page(value, found=found):  # type: ignore[no-untyped-def]
                found.append(len(paginate_by_pk(patient_list(query=value), 1, 25).object_list))

            _timed(app_page, values[:20])
            found.clear()
            a50, a95 = _percentiles(_timed(app_page, values))
            print(f"{label:<26} {a50:>7.2f}ms {a95:>7.2f}ms {statistics.mean(found):>6.1f}")

        mrn = people[sample[0]].mrn
        started = time.perf_counter()
        found = [p.pk for p in Patient.objects.only("id", "mrn").iterator(chunk_size=5000) if p.mrn == mrn]
        scan = time.perf_counter() - started
        print(
            f"decrypt-and-scan baseline (MRN, {facts['patients']} rows): {scan * 1000:.0f} ms for one query "
            f"(found {len(found)})"
        )

    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username=f"nurse@{facts['slug']}.example"))
    client.get("/")
    pages = max(1, facts["patients"] // 25)
    for label, urls in (
        ("patient list page", [f"/patients/?page={rng.randint(1, pages)}" for _ in range(args.samples // 3)]),
        ("patient list search", [("/patients/", people[pk].family_name[:4]) for pk in sample[: args.samples // 3]]),
        ("patient page", [f"/patients/{pk}/" for pk in sample[: args.samples // 3]]),
    ):

        def fetch(url):  # type: ignore[no-untyped-def]
            # Searches are POSTed (search terms are PHI and stay out of URLs).
            return client.post(url[0], {"q": url[1]}) if isinstance(url, tuple) else client.get(url)

        queries = []
        with connection.execute_wrapper(lambda execute, sql, *rest: (queries.append(sql), execute(sql, *rest))[1]):
            assert fetch(urls[0]).status_code == 200
        samples = _timed(fetch, urls)
        p50, p95 = _percentiles(samples)
        print(f"{label:<20} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms  ({len(queries)} queries)")
    reminder_scan(organization, 30)


def reminder_scan(organization, samples: int) -> None:  # type: ignore[no-untyped-def]
    """The outreach due-work scan among the bench's appointments: one batch (500) of booked
    appointments in a 73-hour window, with the patient fields a reminder reads. The bench's
    calendar lies in the past, so "now" is moved into it and that window's appointments are
    marked booked, inside a transaction that is rolled back."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from engagement.models import Rule
    from engagement.selectors import appointments_for_reminders
    from healthcrm.tenancy import organization_context
    from patients.models import Appointment

    class Rollback(Exception):
        pass

    try:
        with transaction.atomic(), organization_context(organization):
            now = timezone.now() - timedelta(days=600)
            window = Appointment.objects.filter(starts_at__gt=now, starts_at__lte=now + timedelta(hours=73))
            window.update(status="booked")
            rule = Rule(appointment_types=[])
            total = Appointment.objects.count()
            rows = 0

            def scan(_):  # type: ignore[no-untyped-def]
                nonlocal rows
                rows = len(list(appointments_for_reminders(rule=rule, now=now, horizon=timedelta(hours=73))[:500]))

            _timed(scan, range(5))
            p50, p95 = _percentiles(_timed(scan, range(samples)))
            print(
                f"reminder due scan ({total} appointments in the organization, batch of {rows}): "
                f"p50 {p50:.2f} ms  p95 {p95:.2f} ms"
            )
            raise Rollback
    except Rollback:
        pass


if __name__ == "__main__":
    main()
