"""python manage.py import_fhir FILE... --organization SLUG [--source-system NAME]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from auditlog.context import set_actor
from django.core.management.base import BaseCommand, CommandError

from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.fhir.importer import ImportReport, fhir_import_data
from integrations.fhir.services import max_upload_bytes


class Command(BaseCommand):
    help = "Import FHIR R4 Bundles or NDJSON files into an organization; exits 1 when anything failed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--organization", required=True, help="The organization's slug.")
        parser.add_argument("--source-system", default="file", help="Where the data comes from (upsert key).")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["organization"], is_active=True).first()
        if organization is None:
            raise CommandError(f"No active organization with the slug {options['organization']!r}.")
        report = ImportReport()

        def run(fn: Any) -> None:
            with organization_context(organization):
                fn()

        limit = max_upload_bytes() * 16  # the shell may import bigger files than the browser upload
        for path in options["files"]:
            if not path.is_file():
                raise CommandError(f"{path}: no such file.")
            if path.stat().st_size > limit:
                raise CommandError(f"{path}: larger than {limit // (1024 * 1024)} MB.")
            self.stdout.write(f"Importing {path.name} ...")
            with set_actor(None):
                fhir_import_data(path.read_bytes(), source_system=options["source_system"], report=report, run_unit=run)
        self.stdout.write(report.as_text())
        if not report.ok:
            raise CommandError(f"{report.failure_total} failure(s); the units that failed were rolled back.")
        self.stdout.write(self.style.SUCCESS("Import finished without failures."))
