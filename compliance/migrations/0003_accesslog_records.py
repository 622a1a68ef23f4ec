"""Access-log rows name what was shown as (type, id) pairs: `records`, covered by the audit chain.

Rows written before keep their stored content hashes: the canonical content includes `records`
only when it is not empty (every older row's is), so their content text is unchanged.
"""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
from django.db import migrations, models

_BASE = """
        'id', r.id, 'organization_id', r.organization_id, 'created_at', audit_utc(r.created_at),
        'actor_label', r.actor_label, 'action', r.action, 'view_name', r.view_name,
        'object_type', r.object_type, 'object_ids', to_jsonb(r.object_ids),
        'search_fields', to_jsonb(r.search_fields), 'search_fingerprint', r.search_fingerprint,
        'ip_address', host(r.ip_address)
"""

WITH_RECORDS = """
CREATE OR REPLACE FUNCTION audit_content_access(r compliance_accesslog) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT (jsonb_build_object(@BASE@)
        || CASE WHEN r.records IS DISTINCT FROM '{}'::varchar[]
                THEN jsonb_build_object('records', to_jsonb(r.records)) ELSE '{}'::jsonb END
    )::text
$$;
"""

WITHOUT_RECORDS = """
CREATE OR REPLACE FUNCTION audit_content_access(r compliance_accesslog) RETURNS text LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(@BASE@)::text
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0002_audit_chain"),
    ]

    operations = [
        migrations.AddField(
            model_name="accesslog",
            name="records",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(max_length=120), blank=True, default=list, size=None
            ),
        ),
        migrations.AddIndex(
            model_name="accesslog",
            index=django.contrib.postgres.indexes.GinIndex(fields=["records"], name="accesslog_records"),
        ),
        # Writers that do not name the column (raw SQL, the owner's tools) write an empty list.
        migrations.RunSQL(
            "ALTER TABLE compliance_accesslog ALTER COLUMN records SET DEFAULT '{}'",
            "ALTER TABLE compliance_accesslog ALTER COLUMN records DROP DEFAULT",
        ),
        migrations.RunSQL(WITH_RECORDS.replace("@BASE@", _BASE), WITHOUT_RECORDS.replace("@BASE@", _BASE)),
    ]
