"""Keep the planner's statistics on reservations as fresh as their statuses move.

PostgreSQL re-analyzes a table after 10 % of its rows changed: on a year of
history (70M rows) that is weeks, while the share of holds waiting for payment
moves by the minute. Planned with statistics that show no such holds, the
driver's unpaid-holds check in every booking read all the open holds of every
driver (the hold-expiry index, filtered by driver) instead of that driver's own
few (reservation_user_unpaid): 2,400 pages a booking on the bench with 2,300
holds open, 2 with fresh statistics. Analyzing after every 10,000 changed rows
(a few seconds of bookings at peak, a sample of 30,000 rows each time) keeps the
statistics near the table whatever its size.
"""

from django.db import migrations

SETTINGS = "autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 10000"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE reservations_reservation SET ({SETTINGS})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "ALTER TABLE reservations_reservation "
            "RESET (autovacuum_analyze_scale_factor, autovacuum_analyze_threshold)"
        )


class Migration(migrations.Migration):
    dependencies = [("reservations", "0014_notices")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
