"""Fill the database with two synthetic demo organizations, their staff and patients.

Everything here is made up (Faker names, fictional 555-01xx phone numbers, example.org emails).
Bulk paths keep `--patients 100000` to minutes; bulk inserts are not individually audited.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from faker import Faker

from healthcrm.models import Location, Membership, Organization
from healthcrm.roles import Role
from healthcrm.tenancy import organization_context, user_context
from patients.models import Patient, Sex

DEFAULT_PASSWORD = "demo-password-2026"
BATCH = 2000


@dataclass(frozen=True)
class DemoOrganization:
    slug: str
    name: str
    timezone: str
    area_codes: tuple[str, ...]
    mrn_prefix: str
    locations: tuple[tuple[str, str], ...]


DEMO_ORGANIZATIONS = (
    DemoOrganization("northside", "Northside Family Health", "America/Chicago", ("312", "773", "872"), "NS",
                     (("Northside Main Clinic", "100 Example Ave, Chicago, IL"),
                      ("Northside Lakeview Office", "200 Sample St, Chicago, IL"))),
    DemoOrganization("lakeside", "Lakeside Community Clinic", "America/Los_Angeles", ("206", "425", "253"), "LS",
                     (("Lakeside Downtown", "300 Demo Blvd, Seattle, WA"),
                      ("Lakeside Eastside", "400 Placeholder Rd, Bellevue, WA"))),
)

# A nurse who works for both clinics, to show switching organizations.
FLOAT_NURSE = "float.nurse@demo.example"
PLATFORM_ADMIN = "platform@healthcrm.example"


class Command(BaseCommand):
    help = "Create the demo organizations (northside, lakeside), one user per role in each, and synthetic patients."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--patients", type=int, default=200, help="Patients per organization (default 200).")
        parser.add_argument("--password", default=None, help=f"Password of every demo user (default {DEFAULT_PASSWORD}).")
        parser.add_argument("--seed", type=int, default=2026, help="Random seed, for repeatable data.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any organization exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["patients"] < 0:
            raise CommandError("--patients must be 0 or more.")
        if options["if_empty"] and Organization.objects.exists():
            self.stdout.write("Organizations exist already: demo data not seeded (--if-empty).")
            return
        password = options["password"] or DEFAULT_PASSWORD
        rng = random.Random(options["seed"])
        fake = Faker("en_US")
        fake.seed_instance(options["seed"])
        started = time.monotonic()
        users = self._users(password)
        for spec in DEMO_ORGANIZATIONS:
            organization, _ = Organization.objects.update_or_create(
                slug=spec.slug, defaults={"name": spec.name, "timezone": spec.timezone, "require_mfa": False,
                                          "phone": f"+1{spec.area_codes[0]}5550100"},
            )
            with organization_context(organization):
                self._locations(spec)
                self._memberships(organization, spec, users)
                created = self._patients(spec, options["patients"], rng, fake)
            self.stdout.write(f"{spec.slug}: {created} patients created.")
        self.stdout.write(self.style.SUCCESS(f"Demo data ready in {time.monotonic() - started:.1f} s."))
        self.stdout.write(f"Sign in as <role>@northside.example or <role>@lakeside.example "
                          f"(roles: {', '.join(Role.values)}), {FLOAT_NURSE} (both clinics) or "
                          f"{PLATFORM_ADMIN} (platform admin); password: {password}")

    def _users(self, password: str) -> dict[str, Any]:
        User = get_user_model()
        emails = [f"{role}@{spec.slug}.example" for spec in DEMO_ORGANIZATIONS for role in Role.values]
        emails += [FLOAT_NURSE, PLATFORM_ADMIN]
        users = {}
        for email in emails:
            user, created = User.objects.get_or_create(username=email, defaults={"email": email})
            user.first_name = email.split("@")[0].split(".")[0].capitalize()
            user.is_staff = email.startswith("admin@") or email == PLATFORM_ADMIN
            user.is_superuser = email == PLATFORM_ADMIN
            user.set_password(password)
            user.save()
            users[email] = user
        return users

    def _locations(self, spec: DemoOrganization) -> None:
        for name, address in spec.locations:
            if not Location.objects.filter(name=name).exists():
                Location.objects.create(name=name, address=address, phone=f"+1{spec.area_codes[0]}5550100")

    def _memberships(self, organization: Organization, spec: DemoOrganization, users: dict[str, Any]) -> None:
        with user_context(None):
            wanted = [(users[f"{role}@{spec.slug}.example"], role) for role in Role.values]
            wanted.append((users[FLOAT_NURSE], Role.NURSE))
            for user, role in wanted:
                Membership.objects.update_or_create(user=user, organization=organization, defaults={"role": role})

    @transaction.atomic
    def _patients(self, spec: DemoOrganization, count: int, rng: random.Random, fake: Faker) -> int:
        start = Patient.objects.count()
        today = date.today()
        batch: list[Patient] = []
        for number in range(start + 1, start + count + 1):
            sex = rng.choice((Sex.FEMALE, Sex.MALE, Sex.FEMALE, Sex.MALE, Sex.OTHER))
            given = fake.first_name_female() if sex == Sex.FEMALE else fake.first_name_male() if sex == Sex.MALE else fake.first_name()
            family = fake.last_name()
            batch.append(Patient(
                mrn=f"{spec.mrn_prefix}-{number:07d}",
                given_name=given,
                family_name=family,
                date_of_birth=today - timedelta(days=rng.randint(18 * 365, 95 * 365)),
                sex=sex,
                # 555-0100..0199 are reserved for fiction.
                phone_mobile=f"+1{rng.choice(spec.area_codes)}55501{rng.randint(0, 99):02d}" if rng.random() < 0.92 else "",
                email=f"{given}.{family}.{number}@example.org".lower() if rng.random() < 0.7 else "",
            ))
            if len(batch) >= BATCH:
                Patient.objects.bulk_create(batch)
                batch.clear()
        if batch:
            Patient.objects.bulk_create(batch)
        return count
