"""PostgreSQL: the lot's blocking bookings by booked range (GiST), so that
availability finds the spots busy over a window by the bookings that overlap it
instead of probing every spot (reservations/hot_sql.py, AVAILABILITY_BY_RANGE).

Built CONCURRENTLY: on a live table with a long history, a plain CREATE INDEX
would block bookings while it builds. SQLite counts spot by spot and needs none.
"""

from django.db import migrations

BLOCKING = "('pending_payment', 'confirmed', 'parked', 'completed', 'no_show')"

CREATE = f"""
CREATE INDEX CONCURRENTLY IF NOT EXISTS reservation_lot_busy ON reservations_reservation
    USING gist (lot_id, tstzrange(start, occupied_until, '[)'))
    WHERE status IN {BLOCKING}
"""

DROP = "DROP INDEX CONCURRENTLY IF EXISTS reservation_lot_busy"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("reservations", "0011_best_fit_neighbour_indexes")]

    operations = [migrations.RunPython(forwards, backwards)]
