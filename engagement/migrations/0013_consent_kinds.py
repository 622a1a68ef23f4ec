# Generated (then hand-edited: the rename keeps every channel consent) by Django 5.2.19 on 2026-12-07 23:56

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("engagement", "0012_rule_kinds_waitlist_and_education"),
        ("patients", "0021_restricted_records"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="consent", name="consent_unique_per_patient_channel"),
        migrations.RemoveConstraint(model_name="consentchange", name="consentchange_channel_valid"),
        # A channel consent becomes a consent of the channel's kind: same values, no row touched.
        migrations.RenameField(model_name="consent", old_name="channel", new_name="kind"),
        migrations.RenameField(model_name="consentchange", old_name="channel", new_name="kind"),
        migrations.AddField(
            model_name="consent",
            name="evidence_document",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="patients.patientdocument",
            ),
        ),
        migrations.AddField(
            model_name="consent",
            name="evidence_message",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="engagement.conversationmessage",
            ),
        ),
        migrations.AddField(
            model_name="consent",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="consent",
            name="party",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="consentchange",
            name="evidence_document",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="patients.patientdocument",
            ),
        ),
        migrations.AddField(
            model_name="consentchange",
            name="evidence_message",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="engagement.conversationmessage",
            ),
        ),
        migrations.AddField(
            model_name="consentchange",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="consentchange",
            name="party",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AlterField(
            model_name="consent",
            name="kind",
            field=models.CharField(
                choices=[
                    ("treatment", "Treatment"),
                    ("sms", "SMS"),
                    ("email", "Email"),
                    ("marketing", "Marketing and education campaigns"),
                    ("research", "Research"),
                    ("data_sharing", "Data sharing with an EHR connection"),
                ],
                max_length=16,
            ),
        ),
        migrations.AlterField(
            model_name="consentchange",
            name="kind",
            field=models.CharField(
                choices=[
                    ("treatment", "Treatment"),
                    ("sms", "SMS"),
                    ("email", "Email"),
                    ("marketing", "Marketing and education campaigns"),
                    ("research", "Research"),
                    ("data_sharing", "Data sharing with an EHR connection"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddConstraint(
            model_name="consent",
            constraint=models.UniqueConstraint(
                fields=("organization", "patient", "kind", "party"),
                name="consent_unique_per_patient_kind",
                violation_error_message="This patient already has a consent of this kind.",
            ),
        ),
        migrations.AddConstraint(
            model_name="consent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind__in", ["treatment", "sms", "email", "marketing", "research", "data_sharing"])
                ),
                name="consent_kind_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="consent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "data_sharing"), ("party__gt", "")),
                    models.Q(models.Q(("kind", "data_sharing"), _negated=True), ("party", "")),
                    _connector="OR",
                ),
                name="consent_party_iff_sharing",
                violation_error_message="Data sharing needs its EHR connection (and only data sharing has one).",
            ),
        ),
        migrations.AddConstraint(
            model_name="consent",
            constraint=models.CheckConstraint(
                condition=models.Q(("expires_at__isnull", True), ("status", "opted_in"), _connector="OR"),
                name="consent_expiry_on_grant",
                violation_error_message="Only a consent that is given can have an expiry date.",
            ),
        ),
        migrations.AddConstraint(
            model_name="consent",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("evidence_document__isnull", True), ("evidence_message__isnull", True), _connector="OR"
                ),
                name="consent_one_evidence",
                violation_error_message="Give one piece of evidence: a document or a message.",
            ),
        ),
        migrations.AddConstraint(
            model_name="consentchange",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("kind__in", ["treatment", "sms", "email", "marketing", "research", "data_sharing"])
                ),
                name="consentchange_kind_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="consentchange",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("kind", "data_sharing"), ("party__gt", "")),
                    models.Q(models.Q(("kind", "data_sharing"), _negated=True), ("party", "")),
                    _connector="OR",
                ),
                name="consentchange_party_iff_sharing",
                violation_error_message="Data sharing needs its EHR connection (and only data sharing has one).",
            ),
        ),
        migrations.AddConstraint(
            model_name="consentchange",
            constraint=models.CheckConstraint(
                condition=models.Q(("expires_at__isnull", True), ("status", "opted_in"), _connector="OR"),
                name="consentchange_expiry_on_grant",
                violation_error_message="Only a consent that is given can have an expiry date.",
            ),
        ),
        migrations.AddConstraint(
            model_name="consentchange",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("evidence_document__isnull", True), ("evidence_message__isnull", True), _connector="OR"
                ),
                name="consentchange_one_evidence",
                violation_error_message="Give one piece of evidence: a document or a message.",
            ),
        ),
    ]
