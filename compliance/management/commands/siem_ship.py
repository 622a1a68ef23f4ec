"""Ship audit events to the SIEM collector now (what the beat task does every minute)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from compliance.siem import SinkError, siem_ship, sink_from_settings
from healthcrm.models import Organization


class Command(BaseCommand):
    help = "Ship each organization's audit and access events after its checkpoint to the SIEM collector."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--organization", help="Only this organization (its slug).")
        parser.add_argument("--batch-size", type=int, default=settings.SIEM_BATCH_SIZE)

    def handle(self, *args: Any, **options: Any) -> None:
        organizations = Organization.objects.filter(is_active=True).order_by("pk")
        if options["organization"]:
            organizations = organizations.filter(slug=options["organization"])
            if not organizations.exists():
                raise CommandError("No active organization has that slug.")
        sink = sink_from_settings()
        try:
            for organization in organizations:
                try:
                    count = siem_ship(organization=organization, sink=sink, batch_size=options["batch_size"])
                except SinkError as error:
                    raise CommandError(f"{organization.slug}: {error}") from None
                self.stdout.write(f"{organization.slug}: {count} events shipped to {sink.name}")
        finally:
            sink.close()
