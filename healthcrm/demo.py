"""Demo data as a registry: every app contributes its own seeding steps, the top orders them.

An app seeds its own tables in `<app>/demo.py`:

    from healthcrm import demo

    @demo.register("patients")
    def patients(tenant: demo.DemoTenant) -> list[str]:
        ...
        return [f"{created} patients"]

`seed_demo` (staff/management/commands/) imports every installed app's `demo` module (by name, as
admin does with `admin.py`), and runs the steps in the order it declares, which must name every
registered step: the order is a fact about several apps, so it lives in the app above them all.
Steps registered with `per_organization=False` run once, first (users, organizations); the others
run for each demo organization in turn, each inside `organization_context` of that organization
(one transaction per step), and return phrases for the command's summary line ("30 patients").

This module holds the core's own steps too: the users, the organizations, their locations and
memberships. Everything is synthetic (fictional 555-01xx numbers, example domains).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

from healthcrm.models import Location, Membership, Organization
from healthcrm.roles import Role
from healthcrm.tenancy import organization_context, user_context

# bandit B105: the documented demo password (synthetic data).
DEFAULT_PASSWORD = "demo-password-2026"  # nosec B105


@dataclass(frozen=True)
class DemoOrganization:
    slug: str
    name: str
    timezone: str
    area_codes: tuple[str, ...]
    mrn_prefix: str
    locations: tuple[tuple[str, str], ...]


DEMO_ORGANIZATIONS = (
    DemoOrganization(
        "northside",
        "Northside Family Health",
        "America/Chicago",
        ("312", "773", "872"),
        "NS",
        (
            ("Northside Main Clinic", "100 Example Ave, Chicago, IL"),
            ("Northside Lakeview Office", "200 Sample St, Chicago, IL"),
        ),
    ),
    DemoOrganization(
        "lakeside",
        "Lakeside Community Clinic",
        "America/Los_Angeles",
        ("206", "425", "253"),
        "LS",
        (
            ("Lakeside Downtown", "300 Demo Blvd, Seattle, WA"),
            ("Lakeside Eastside", "400 Placeholder Rd, Bellevue, WA"),
        ),
    ),
)

# A nurse who works for both clinics, to show switching organizations.
FLOAT_NURSE = "float.nurse@demo.example"
PLATFORM_ADMIN = "platform@healthcrm.example"


@dataclass
class DemoRun:
    """One run of seed_demo: its options, its random sources, and what the once-steps made."""

    patients: int  # per organization
    password: str
    rng: random.Random
    fake: Any  # a seeded faker.Faker (a development dependency: the core does not import it)
    users: dict[str, Any] = field(default_factory=dict)  # by email
    organizations: dict[str, Organization] = field(default_factory=dict)  # by slug


@dataclass
class DemoTenant:
    """One demo organization being seeded, as the per-organization steps see it."""

    run: DemoRun
    spec: DemoOrganization
    organization: Organization
    # What one step leaves for the next ones (e.g. "patients_added" for the calendar and care plans).
    state: dict[str, Any] = field(default_factory=dict)


StepFunction = Callable[..., Any]


@dataclass(frozen=True)
class DemoStep:
    name: str
    function: StepFunction
    per_organization: bool


class DemoRegistry:
    """Seeding steps by name; `ordered()` returns them in a declared order that names them all."""

    def __init__(self) -> None:
        self._steps: dict[str, DemoStep] = {}

    def register(
        self, name: str, *, per_organization: bool = True
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            existing = self._steps.get(name)
            if existing is not None and existing.function.__module__ != function.__module__:
                raise ImproperlyConfigured(
                    f"Demo step {name!r} is registered twice ({existing.function.__module__}, {function.__module__})."
                )
            self._steps[name] = DemoStep(name, function, per_organization)
            return function

        return decorate

    def names(self) -> set[str]:
        return set(self._steps)

    def ordered(self, order: Sequence[str]) -> list[DemoStep]:
        """The steps in `order`, which must name each registered step once, once-steps first."""
        unknown = [name for name in order if name not in self._steps]
        missing = sorted(self.names() - set(order))
        repeated = sorted({name for name in order if list(order).count(name) > 1})
        if unknown or missing or repeated:
            raise ImproperlyConfigured(
                f"The demo step order must name every registered step once: unknown {unknown}, "
                f"not placed {missing}, repeated {repeated}."
            )
        steps = [self._steps[name] for name in order]
        kinds = [step.per_organization for step in steps]
        if kinds != sorted(kinds):
            raise ImproperlyConfigured("Demo steps that run once (per_organization=False) must come first.")
        return steps


registry = DemoRegistry()
register = registry.register


def discover() -> None:
    """Import every installed app's `demo` module, so its steps register."""
    autodiscover_modules("demo")


# -- The core's own steps: users, organizations, locations, memberships ------------------------


# Synthetic staff names (given, family per organization), so colleagues are told apart by full name.
DEMO_STAFF_NAMES = {
    "admin": ("Morgan", ("Avery", "Quill")),
    "provider": ("Priya", ("Raman", "Okafor")),
    "nurse": ("Nora", ("Hale", "Lindqvist")),
    "coordinator": ("Carlos", ("Vidal", "Brandt")),
    "frontdesk": ("Frankie", ("Moss", "Tanaka")),
    "analyst": ("Ana", ("Lind", "Ferreira")),
    "compliance": ("Colin", ("Marsh", "Delacroix")),
}


def _demo_name(email: str) -> tuple[str, str]:
    local, _, domain = email.partition("@")
    slugs = [spec.slug for spec in DEMO_ORGANIZATIONS]
    slug = domain.removesuffix(".example")
    if local in DEMO_STAFF_NAMES and slug in slugs:
        given, families = DEMO_STAFF_NAMES[local]
        return given, families[slugs.index(slug) % len(families)]
    return local.split(".")[0].capitalize(), ""


@register("users", per_organization=False)
def users(run: DemoRun) -> None:
    """One user per role in each organization, the float nurse and the platform administrator."""
    User = get_user_model()
    emails = [f"{role}@{spec.slug}.example" for spec in DEMO_ORGANIZATIONS for role in Role.values]
    emails += [FLOAT_NURSE, PLATFORM_ADMIN]
    for email in emails:
        user, _ = User.objects.get_or_create(username=email, defaults={"email": email})
        user.first_name, user.last_name = _demo_name(email)
        user.is_staff = email.startswith("admin@") or email == PLATFORM_ADMIN
        user.is_superuser = email == PLATFORM_ADMIN
        user.set_password(run.password)
        user.save()
        run.users[email] = user


@register("organizations", per_organization=False)
def organizations(run: DemoRun) -> None:
    """The demo organizations (no MFA, for trying it out), their locations and memberships."""
    for spec in DEMO_ORGANIZATIONS:
        organization, _ = Organization.objects.update_or_create(
            slug=spec.slug,
            defaults={
                "name": spec.name,
                "timezone": spec.timezone,
                "require_mfa": False,
                "phone": f"+1{spec.area_codes[0]}5550100",
            },
        )
        run.organizations[spec.slug] = organization
        with organization_context(organization):
            for name, address in spec.locations:
                if not Location.objects.filter(name=name).exists():
                    Location.objects.create(name=name, address=address, phone=f"+1{spec.area_codes[0]}5550100")
            with user_context(None):
                wanted = [(run.users[f"{role}@{spec.slug}.example"], role) for role in Role.values]
                wanted.append((run.users[FLOAT_NURSE], Role.NURSE))
                for user, role in wanted:
                    Membership.objects.update_or_create(user=user, organization=organization, defaults={"role": role})
