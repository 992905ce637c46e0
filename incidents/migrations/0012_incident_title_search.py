"""A trigram index for the history search (title contains ..., any status).

Django's ``icontains`` on PostgreSQL is ``UPPER(title::text) LIKE UPPER('%term%')``,
which no b-tree can serve: at 100,000 incidents every search read the whole
table. A GIN index of ``pg_trgm`` trigrams on the same expression serves it.

``pg_trgm`` ships with PostgreSQL's contrib modules (Debian's server package,
every managed PostgreSQL) and is a trusted extension since PostgreSQL 13, so
the database's owner may create it. Where it is missing (the embedded
PostgreSQL of the dev stack and tests) or not allowed, the search still works,
by a sequential scan: this migration then creates nothing. It is therefore not
declared in ``Incident.Meta.indexes`` (the state would lie where it is absent).
"""

from __future__ import annotations

import logging

from django.db import DatabaseError, migrations, models, transaction

logger = logging.getLogger(__name__)

INDEX = "incident_title_trgm"


def create_index(apps, schema_editor):  # type: ignore[no-untyped-def]
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if cursor.fetchone() is None:
            logger.warning("pg_trgm is not installed: the history search reads the whole table")
            return
        try:
            with transaction.atomic(using=connection.alias):  # a savepoint
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
                cursor.execute(
                    f"CREATE INDEX IF NOT EXISTS {INDEX} ON incidents_incident"
                    " USING gin ((UPPER(title::text)) gin_trgm_ops)"
                )
        except DatabaseError as exc:  # no right to create the extension
            logger.warning("no trigram index for the history search: %s", exc)


def drop_index(apps, schema_editor):  # type: ignore[no-untyped-def]
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("incidents", "0011_insights_timeline_escalated"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="incident",
            index=models.Index(fields=["dedup_key"], name="incident_dedup_key"),
        ),
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
