"""A reservation's code without the pattern index Django adds beside it.

On PostgreSQL Django gives a unique CharField a second index for LIKE
(varchar_pattern_ops, "..._like"). The code is only ever looked up whole, which
its unique index answers; the pattern index served no query and cost every
booking an insert at a random page (codes are random): 222 MB on a year of
history. Dropped CONCURRENTLY: a plain DROP INDEX would block bookings.
"""

from django.db import migrations


def _name(schema_editor, model) -> str:
    return schema_editor._create_index_name(model._meta.db_table, ["code"], suffix="_like")


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        name = _name(schema_editor, apps.get_model("reservations", "Reservation"))
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        model = apps.get_model("reservations", "Reservation")
        name = schema_editor.quote_name(_name(schema_editor, model))
        table = schema_editor.quote_name(model._meta.db_table)
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} (code varchar_pattern_ops)"
        )


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("reservations", "0020_staff_list_indexes")]

    operations = [migrations.RunPython(forwards, backwards)]
