"""Issue an API token for one patient's home devices (shown once; only its hash is stored).

The patient is named by record id, never by MRN or name (command lines end up in shell history)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.devices.services import device_token_create
from patients.models import Patient


class Command(BaseCommand):
    help = "Create a device API token for one patient of an organization and print it once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--organization", required=True, help="Organization slug.")
        parser.add_argument("--patient", required=True, type=int, help="The patient's record id (not the MRN).")
        parser.add_argument("--name", required=True, help="What the token is for, e.g. 'BP cuffs, vendor X'.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["organization"], is_active=True).first()
        if organization is None:
            raise CommandError(f"No active organization with slug {options['organization']!r}.")
        with organization_context(organization):
            patient = Patient.objects.filter(pk=options["patient"]).first()
            if patient is None:
                raise CommandError(f"No patient #{options['patient']} in {organization.slug}.")
            token, clear = device_token_create(name=options["name"], patient=patient)
        self.stdout.write(
            f"Token #{token.pk} for patient #{patient.pk} of {organization.slug} ({token.name})."
            " Store it now; it is not shown again:"
        )
        self.stdout.write(clear)
