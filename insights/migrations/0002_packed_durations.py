"""Durations stored packed (insights.models.pack) instead of as bigint[].

Roll-ups are derived data: every roll-up is forgotten here and written
again, in the new form, by the next request or beat's insights.refresh."""

from typing import Any

from django.db import migrations, models


def forget_rollups(apps: Any, schema_editor: Any) -> None:
    for name in ("RolledDay", "DayHealth", "DayNoise", "DayPages"):
        apps.get_model("insights", name).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("insights", "0001_daily_rollups")]

    operations = [
        migrations.RunPython(forget_rollups, migrations.RunPython.noop),
        migrations.RemoveField(model_name="dayhealth", name="to_acknowledge"),
        migrations.RemoveField(model_name="dayhealth", name="to_resolve"),
        migrations.AddField(
            model_name="dayhealth",
            name="to_acknowledge",
            field=models.BinaryField(default=b""),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="dayhealth",
            name="to_resolve",
            field=models.BinaryField(default=b""),
            preserve_default=False,
        ),
    ]
