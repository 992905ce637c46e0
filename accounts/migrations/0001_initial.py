# ApiToken moves here from the incidents app without touching its data.
#
# The table was created by incidents.0001_initial and keeps its name
# (db_table = "incidents_apitoken"), so this migration changes Django's idea
# of which app owns the model and nothing in the database but the content
# type's app label: existing tokens keep working, and servers still running
# the previous release during a rolling upgrade keep querying the same table.
# incidents.0008_apitoken_moves_to_accounts drops the model from the
# incidents app's state after this one has taken it over.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _relabel(apps, old_label, new_label):
    # Existing permissions (view/add/change/delete_apitoken, granted to users
    # and groups) hang off the content type: relabelling it keeps them. The
    # new label cannot have a content type yet: post_migrate creates them only
    # for models in the migrated state, and before this migration no state
    # has an accounts.apitoken.
    ContentType = apps.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label=old_label, model="apitoken").update(app_label=new_label)


def content_type_to_accounts(apps, schema_editor):
    _relabel(apps, "incidents", "accounts")


def content_type_to_incidents(apps, schema_editor):
    _relabel(apps, "accounts", "incidents")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("contenttypes", "0002_remove_content_type_name"),
        # The migration that created the table.
        ("incidents", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ApiToken",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=100)),
                        ("scope", models.CharField(choices=[("read", "Read"), ("write", "Read and write")], default="read", max_length=5)),
                        ("prefix", models.CharField(max_length=12)),
                        ("token_hash", models.CharField(max_length=64, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        ("user", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="api_tokens", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "db_table": "incidents_apitoken",
                        "ordering": ["-created_at"],
                        "constraints": [models.CheckConstraint(condition=models.Q(("scope__in", ["read", "write"])), name="api_token_scope_valid")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_accounts, content_type_to_incidents, elidable=False),
    ]
