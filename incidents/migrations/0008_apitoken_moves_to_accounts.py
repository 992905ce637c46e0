# ApiToken now belongs to the accounts app (accounts.0001_initial took it
# over, table and rows included): drop it from this app's state only. The
# table, incidents_apitoken, stays where it is, used by accounts.ApiToken.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("incidents", "0007_reach_nobody_reached"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="ApiToken")],
            database_operations=[],
        ),
    ]
