"""python manage.py export_fhir --organization SLUG --patient MRN [--output FILE]"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from compliance.models import AccessAction, AccessLog
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.fhir.export import fhir_export_patient
from patients.models import Patient


class Command(BaseCommand):
    help = "Export one patient's record as a FHIR R4 Bundle (access requests); the export is access-logged."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--organization", required=True, help="The organization's slug.")
        parser.add_argument("--patient", required=True, help="The patient's MRN.")
        parser.add_argument("--output", type=Path, help="Write here instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["organization"], is_active=True).first()
        if organization is None:
            raise CommandError(f"No active organization with the slug {options['organization']!r}.")
        with organization_context(organization):
            patient = Patient.objects.blind_match(mrn=options["patient"]).first()
            if patient is None:
                raise CommandError("No patient with this MRN in this organization.")
            bundle = fhir_export_patient(patient=patient)
            AccessLog.objects.create(
                actor=None,
                actor_label="manage.py export_fhir",
                action=AccessAction.EXPORT,
                view_name="integrations.export_fhir",
                object_type=patient._meta.label_lower,
                object_ids=[str(patient.pk)],
            )
        text = json.dumps(bundle, indent=1)
        if options["output"]:
            options["output"].write_text(text)
            self.stderr.write(f"Wrote {len(bundle['entry'])} resources to {options['output']}.")
        else:
            self.stdout.write(text)
