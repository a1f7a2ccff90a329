"""PostgreSQL: make two blocking reservations of one spot over overlapping times
impossible, whatever the application code does (DESIGN §4, "No double booking").

SQLite has no exclusion constraints; there, IMMEDIATE transactions serialise
bookings instead.
"""

from django.db import migrations

BLOCKING = "('pending_payment', 'confirmed', 'parked', 'completed', 'no_show')"

CREATE = f"""
CREATE EXTENSION IF NOT EXISTS btree_gist;
ALTER TABLE reservations_reservation
    ADD CONSTRAINT reservation_no_overlap
    EXCLUDE USING gist (spot_id WITH =, tstzrange(start, occupied_until, '[)') WITH &&)
    WHERE (status IN {BLOCKING});
"""

DROP = "ALTER TABLE reservations_reservation DROP CONSTRAINT IF EXISTS reservation_no_overlap;"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("reservations", "0001_initial")]

    operations = [migrations.RunPython(forwards, backwards)]
