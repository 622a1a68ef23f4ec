"""Fill the database with two synthetic demo organizations, their staff and patients.

Each app seeds its own tables (`<app>/demo.py`, registered with `healthcrm.demo`); this command,
on the top floor, knows the order they depend on: users and organizations first, then per
organization the patients, their calendar, their care plans, and the outreach for those visits.
"""

from __future__ import annotations

import random
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from faker import Faker

from healthcrm import demo
from healthcrm.models import Organization
from healthcrm.roles import Role
from healthcrm.tenancy import organization_context
from staff.demo import DEMO_TOTP_SECRET, demo_otpauth_uri

# Every registered step, in the order they run. A step an app registers but that is not listed
# here makes the command refuse to run (a test checks it), so no app's data is silently skipped.
STEP_ORDER = (
    "users",  # healthcrm: once
    "authenticators",  # staff: once, the demo key for staff accounts (development only)
    "organizations",  # healthcrm: once (with locations and memberships)
    "patients",  # patients: per organization, from here on
    "appointments",  # patients: the patients' calendar
    "care",  # patients.care: plans for the patients' conditions
    "outreach",  # engagement: templates, rules, consents, reminders for the coming visits
    "history",  # analytics: 18 months of visit outcomes, reminders and BP/HbA1c series
    "surveys",  # engagement: six months of post-visit surveys and their answers (past visits above)
    "education",  # engagement: the education library (en, es), its rule, four months of sends and opens
    "questionnaires",  # engagement: a year of PHQ-9 / GAD-7 answers and their scores on the record
    "analytics",  # analytics: a full refresh of the facts, last (reads everything above)
)


def ordered_steps() -> list[demo.DemoStep]:
    demo.discover()
    return demo.registry.ordered(STEP_ORDER)


class Command(BaseCommand):
    help = "Create the demo organizations (northside, lakeside), one user per role in each, and synthetic patients."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--patients",
            type=int,
            default=1000,
            help="Patients per organization (default 1000: enough for analytics figures above the <11 threshold).",
        )
        parser.add_argument(
            "--password", default=None, help=f"Password of every demo user (default {demo.DEFAULT_PASSWORD})."
        )
        parser.add_argument("--seed", type=int, default=2026, help="Random seed, for repeatable data.")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing when any organization exists.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["patients"] < 0:
            raise CommandError("--patients must be 0 or more.")
        if options["if_empty"] and Organization.objects.exists():
            self.stdout.write("Organizations exist already: demo data not seeded (--if-empty).")
            return
        steps = ordered_steps()
        password = options["password"] or demo.DEFAULT_PASSWORD
        fake = Faker("en_US")
        fake.seed_instance(options["seed"])
        run = demo.DemoRun(
            patients=options["patients"], password=password, rng=random.Random(options["seed"]), fake=fake
        )
        started = time.monotonic()
        for step in steps:
            if not step.per_organization:
                step.function(run)
        for spec in demo.DEMO_ORGANIZATIONS:
            tenant = demo.DemoTenant(run=run, spec=spec, organization=run.organizations[spec.slug])
            made: list[str] = []
            for step in steps:
                if step.per_organization:
                    with organization_context(tenant.organization):
                        made += step.function(tenant)
            self.stdout.write(f"{spec.slug}: {_and_list(made)} created.")
        self.stdout.write(self.style.SUCCESS(f"Demo data ready in {time.monotonic() - started:.1f} s."))
        self.stdout.write(
            f"Sign in as <role>@northside.example or <role>@lakeside.example "
            f"(roles: {', '.join(Role.values)}), {demo.FLOAT_NURSE} (both clinics) or "
            f"{demo.PLATFORM_ADMIN} (platform admin); password: {password}"
        )
        if not settings.PRODUCTION:
            self.stdout.write(
                f"Staff accounts ({demo.PLATFORM_ADMIN}, admin@<slug>.example) ask for a second factor: "
                f"TOTP secret {DEMO_TOTP_SECRET} (development only), i.e. {demo_otpauth_uri()}"
            )


def _and_list(phrases: list[str]) -> str:
    """'a, b and c' (the summary line reads as before the steps were split)."""
    if len(phrases) <= 1:
        return "".join(phrases) or "nothing"
    return f"{', '.join(phrases[:-1])} and {phrases[-1]}"
