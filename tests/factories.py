"""factory_boy factories. Tenant factories must run inside organization_context(org)."""

from __future__ import annotations

from datetime import date, timedelta

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from healthcrm.models import Location, Membership, Organization
from healthcrm.tenancy import user_context
from patients.models import Patient

PASSWORD = "correct-horse-battery"


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Clinic {n}")
    slug = factory.Sequence(lambda n: f"clinic-{n}")
    timezone = "America/New_York"
    require_mfa = False


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.test")
    email = factory.LazyAttribute(lambda o: o.username)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def saved(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    organization = factory.SubFactory(OrganizationFactory)
    role = "nurse"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        # Memberships are RLS-guarded: visible to their user or their organization.
        organization = kwargs["organization"]
        from healthcrm.tenancy import organization_context

        with organization_context(organization), user_context(None):
            return super()._create(model_class, *args, **kwargs)


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location

    name = factory.Sequence(lambda n: f"Site {n}")


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN-{n:06d}")
    given_name = factory.Faker("first_name")
    family_name = factory.Faker("last_name")
    date_of_birth = factory.Faker("date_between", start_date=date(1935, 1, 1), end_date=date(2005, 12, 31))
    sex = "female"
    # Area code 773: tests spell the numbers they search for in 312, so a factory number never collides.
    phone_mobile = factory.Sequence(lambda n: f"+1773555{n % 10000:04d}")
    email = factory.LazyAttribute(lambda o: f"{o.given_name}.{o.family_name}@example.org".lower())


class PractitionerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "patients.Practitioner"

    display_name = factory.Sequence(lambda n: f"Dr. Example {n}")


class AppointmentFactory(factory.django.DjangoModelFactory):
    """Needs organization_context; starts_at defaults to tomorrow 10:00 UTC, 30 minutes."""

    class Meta:
        model = "patients.Appointment"

    patient = factory.SubFactory(PatientFactory)
    practitioner = factory.SubFactory(PractitionerFactory)
    starts_at = factory.LazyFunction(
        lambda: (timezone.now() + timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    )
    ends_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(minutes=30))
