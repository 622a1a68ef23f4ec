"""python manage.py export_fhir --organization SLUG --patient MRN [--connection ID] [--output FILE]

Without --connection: the patient's own copy (an access request). With it: the record for that EHR
connection, refused unless the patient consents to sharing with it (integrations/fhir/sharing.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from compliance.models import AccessAction, AccessLog
from healthcrm.models import Organization
from healthcrm.tenancy import organization_context
from integrations.fhir.export import fhir_export_patient
from integrations.fhir.sharing import fhir_share_export
from integrations.models import FhirConnection
from patients.models import Patient


class Command(BaseCommand):
    help = "Export one patient's record as a FHIR R4 Bundle (access requests); the export is access-logged."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--organization", required=True, help="The organization's slug.")
        parser.add_argument("--patient", required=True, help="The patient's MRN.")
        parser.add_argument("--output", type=Path, help="Write here instead of standard output.")
        parser.add_argument(
            "--connection", type=int, help="Export for this EHR connection (id): needs the patient's consent."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        organization = Organization.objects.filter(slug=options["organization"], is_active=True).first()
        if organization is None:
            raise CommandError(f"No active organization with the slug {options['organization']!r}.")
        with organization_context(organization):
            patient = Patient.objects.blind_match(mrn=options["patient"]).first()
            if patient is None:
                raise CommandError("No patient with this MRN in this organization.")
            if options["connection"] is not None:
                bundle = self._for_connection(options["connection"], patient.pk)
            else:
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

    def _for_connection(self, connection_id: int, patient_id: int) -> dict[str, Any]:
        connection = FhirConnection.objects.filter(pk=connection_id).first()
        if connection is None:
            raise CommandError(f"No EHR connection #{connection_id} in this organization.")
        shared = fhir_share_export(connection=connection, patient_ids=[patient_id], actor_label="manage.py export_fhir")
        if patient_id not in shared.bundles:
            # Ids and a fixed reason only: nothing of the patient in the message.
            raise CommandError(f"Patient #{patient_id} refused: {shared.refused[0].reason}")
        return shared.bundles[patient_id]
