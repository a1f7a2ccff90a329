"""The staff's reservation list in the admin, on a long history.

By start, across lots: its rows come latest start first, and without this
index PostgreSQL sorted the whole table for every page (7.3M rows, 8 s, on a
year of history). By the start of the number plate: the admin's search. Built
CONCURRENTLY on PostgreSQL: a plain CREATE INDEX would block bookings while it
builds on a long history.
"""

from django.db import migrations, models

INDEXES = [
    models.Index(fields=["start"], name="reservation_start"),
    models.Index(
        fields=["vehicle_plate"],
        opclasses=["varchar_pattern_ops"],
        condition=~models.Q(vehicle_plate=""),
        name="reservation_plate_prefix",
    ),
]


def forwards(apps, schema_editor):
    model = apps.get_model("reservations", "Reservation")
    for index in INDEXES:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(index.create_sql(model, schema_editor, concurrently=True))
        else:
            schema_editor.add_index(model, index)


def backwards(apps, schema_editor):
    model = apps.get_model("reservations", "Reservation")
    for index in INDEXES:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(index.remove_sql(model, schema_editor, concurrently=True))
        else:
            schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("reservations", "0019_closures")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name="reservation", index=index) for index in INDEXES
            ],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
