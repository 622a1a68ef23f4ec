"""Issue an API token for home devices of one organization (shown once; only its hash is stored)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.devices.services import device_token_create


class Command(BaseCommand):
    help = "Create a device API token for an organization and print it once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--organization", required=True, help="Organization slug.")
        parser.add_argument("--name", required=True, help="What the token is for, e.g. 'BP cuffs, vendor X'.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["organization"], is_active=True).first()
        if organization is None:
            raise CommandError(f"No active organization with slug {options['organization']!r}.")
        with organization_context(organization):
            token, clear = device_token_create(name=options["name"])
        self.stdout.write(
            f"Token #{token.pk} for {organization.slug} ({token.name}). Store it now; it is not shown again:"
        )
        self.stdout.write(clear)
