"""Access-log rows for a change made through a record's page (a reply, a task): action "change"."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0003_accesslog_records"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="accesslog",
            name="accesslog_action_valid",
        ),
        migrations.AlterField(
            model_name="accesslog",
            name="action",
            field=models.CharField(
                choices=[
                    ("view", "Viewed a record"),
                    ("list", "Listed records"),
                    ("search", "Searched"),
                    ("export", "Exported"),
                    ("change", "Changed a record"),
                    ("denied", "Was denied access"),
                ],
                max_length=8,
            ),
        ),
        migrations.AddConstraint(
            model_name="accesslog",
            constraint=models.CheckConstraint(
                condition=models.Q(("action__in", ["view", "list", "search", "export", "change", "denied"])),
                name="accesslog_action_valid",
            ),
        ),
    ]
