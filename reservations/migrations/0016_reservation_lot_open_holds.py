"""The lot's holds waiting for payment, by lot, type and expiry.

Availability asks when the first hold counted as taken lapses (the cached
answer's end). Without this index PostgreSQL answered it from the hold-expiry
index: every open hold of every lot, 1,636 pages per uncached answer on the bench
with 1,800 holds open. Built CONCURRENTLY on PostgreSQL: a plain CREATE INDEX
would block bookings on a long history while it builds.
"""

from django.db import migrations, models

INDEX = models.Index(
    fields=["lot", "vehicle_type", "hold_expires_at"],
    condition=models.Q(status="pending_payment"),
    name="reservation_lot_open_holds",
)


def forwards(apps, schema_editor):
    model = apps.get_model("reservations", "Reservation")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.create_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(model, INDEX)


def backwards(apps, schema_editor):
    model = apps.get_model("reservations", "Reservation")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.remove_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("reservations", "0015_reservation_statistics_kept_fresh")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="reservation", index=INDEX)],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
