# Search by every word of a name (given, family, preferred; prefixes, long words, initials beside a
# word), by the MRN's number and by the last 7 or 10 digits of the mobile number (issue #11).
#
# Order: add the new hash columns; point the lookup table's trigger at the new array (the old
# update trigger names the old columns, which could not be dropped while it exists); compute the
# new hashes of every existing patient, one organization at a time (the trigger rewrites each
# patient's lookup rows as it goes); drop the old per-field prefix arrays.

from django.db import migrations

import healthcrm.crypto

SEARCH_FIELDS = ["name_search_digests", "mrn_digits_bidx", "phone_mobile_last7_bidx", "phone_mobile_last10_bidx"]
OLD_FIELDS = ["given_name_prefixes", "family_name_prefixes"]
BATCH = 2000


def _recompute(apps, schema_editor, field_names):
    """Recompute `field_names` (blind indexes) of every patient, one organization at a time (forced
    RLS applies to the migrating owner too, so each organization must be set)."""
    Organization = apps.get_model("healthcrm", "Organization")
    Patient = apps.get_model("patients", "Patient")
    alias = schema_editor.connection.alias
    fields = [Patient._meta.get_field(name) for name in field_names]

    def refresh(patient):
        for field in fields:
            if hasattr(field, "refresh"):
                field.refresh(patient)
            else:
                setattr(patient, field.attname, field.digest(getattr(patient, field.source), patient.organization_id))

    for organization_id in Organization.objects.using(alias).values_list("pk", flat=True):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT set_config('app.current_organization', %s, true)", [str(organization_id)])
        batch = []
        patients = Patient.objects.using(alias).filter(organization_id=organization_id).order_by("pk")
        for patient in patients.iterator(chunk_size=BATCH):
            refresh(patient)
            batch.append(patient)
            if len(batch) >= BATCH:
                Patient.objects.using(alias).bulk_update(batch, field_names)
                batch = []
        if batch:
            Patient.objects.using(alias).bulk_update(batch, field_names)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.current_organization', '', true)")


def forwards(apps, schema_editor):
    _recompute(apps, schema_editor, SEARCH_FIELDS)


def backwards(apps, schema_editor):
    _recompute(apps, schema_editor, OLD_FIELDS)


NEW_TRIGGER = """
DROP TRIGGER patients_patient_name_prefixes_update ON patients_patient;
CREATE OR REPLACE FUNCTION patients_patient_sync_name_prefixes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM patients_patientnameprefix WHERE patient_id = NEW.id;
    END IF;
    INSERT INTO patients_patientnameprefix (organization_id, patient_id, digest)
    SELECT DISTINCT NEW.organization_id, NEW.id, d FROM unnest(NEW.name_search_digests) AS d;
    RETURN NULL;
END $$;
CREATE TRIGGER patients_patient_name_prefixes_update
    AFTER UPDATE OF name_search_digests ON patients_patient
    FOR EACH ROW WHEN (OLD.name_search_digests IS DISTINCT FROM NEW.name_search_digests)
    EXECUTE FUNCTION patients_patient_sync_name_prefixes();
"""

# Back to 0005's trigger; the old arrays are recomputed after this (reverse order), so rebuild the
# table from them at the end of the way back (see OLD_TABLE_REBUILD).
OLD_TRIGGER = """
DROP TRIGGER patients_patient_name_prefixes_update ON patients_patient;
CREATE OR REPLACE FUNCTION patients_patient_sync_name_prefixes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM patients_patientnameprefix WHERE patient_id = NEW.id;
    END IF;
    INSERT INTO patients_patientnameprefix (organization_id, patient_id, digest)
    SELECT DISTINCT NEW.organization_id, NEW.id, d
    FROM unnest(NEW.given_name_prefixes || NEW.family_name_prefixes) AS d;
    RETURN NULL;
END $$;
CREATE TRIGGER patients_patient_name_prefixes_update
    AFTER UPDATE OF given_name_prefixes, family_name_prefixes ON patients_patient
    FOR EACH ROW WHEN (OLD.given_name_prefixes IS DISTINCT FROM NEW.given_name_prefixes
                       OR OLD.family_name_prefixes IS DISTINCT FROM NEW.family_name_prefixes)
    EXECUTE FUNCTION patients_patient_sync_name_prefixes();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0007_appointment_patient_overlap_and_reasons"),
    ]

    operations = [
        migrations.AddField(
            model_name="patient",
            name="mrn_digits_bidx",
            field=healthcrm.crypto.BlindIndexField(kind="identifier_digits", source="mrn"),
        ),
        migrations.AddField(
            model_name="patient",
            name="name_search_digests",
            field=healthcrm.crypto.BlindNameIndexField(sources=["given_name", "family_name", "preferred_name"]),
        ),
        migrations.AddField(
            model_name="patient",
            name="phone_mobile_last10_bidx",
            field=healthcrm.crypto.BlindIndexField(kind="phone_last10", source="phone_mobile"),
        ),
        migrations.AddField(
            model_name="patient",
            name="phone_mobile_last7_bidx",
            field=healthcrm.crypto.BlindIndexField(kind="phone_last7", source="phone_mobile"),
        ),
        # The way back recomputes the old arrays after OLD_TRIGGER is back, so their update
        # trigger rewrites each patient's lookup rows.
        migrations.RunSQL(sql=NEW_TRIGGER, reverse_sql=migrations.RunSQL.noop),
        migrations.RunPython(forwards, backwards),
        migrations.RunSQL(sql=migrations.RunSQL.noop, reverse_sql=OLD_TRIGGER),
        migrations.RemoveField(model_name="patient", name="family_name_prefixes"),
        migrations.RemoveField(model_name="patient", name="given_name_prefixes"),
    ]
