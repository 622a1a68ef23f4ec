"""Recompute the patients' blind indexes (search hashes), one organization at a time."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from patients.services import patient_search_indexes_rebuild


class Command(BaseCommand):
    help = (
        "Recompute every patient's blind indexes (MRN, phone, email, birth date, name-search hashes) "
        "after BLIND_INDEX_KEY or the normalization changed. Prints counts only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--organization", metavar="SLUG", help="only this organization (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        organizations = Organization.objects.order_by("pk")
        if options["organization"]:
            organizations = organizations.filter(slug=options["organization"])
            if not organizations.exists():
                raise CommandError(f"No organization with the slug {options['organization']!r}.")
        for organization in organizations:
            with organization_context(organization):
                changed = patient_search_indexes_rebuild()
            self.stdout.write(f"{organization.slug}: {changed} patients re-indexed")
