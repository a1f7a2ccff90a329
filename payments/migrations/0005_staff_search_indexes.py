"""Stripe's ids as staff search them, on a long history.

Stripe events by what they are about (object_id): the admin's search read every
event with "contains". And two indexes Django adds on PostgreSQL beside an
indexed CharField, for LIKE (varchar_pattern_ops, "..._like"), dropped: event
and PaymentIntent ids are only ever looked up whole, which their own indexes
answer, so these served no query and cost every webhook and payment a write.
All CONCURRENTLY on PostgreSQL: payments and webhooks go on while they build.
"""

from django.db import migrations, models

OBJECT_INDEX = models.Index(
    fields=["object_id"], condition=~models.Q(object_id=""), name="stripe_event_object"
)
# (model, field) whose pattern index goes.
PATTERN_INDEXES = [("StripeEvent", "event_id"), ("Payment", "payment_intent_id")]


def _pattern_index(apps, schema_editor, model_name: str, field: str) -> tuple[str, str]:
    model = apps.get_model("payments", model_name)
    table = model._meta.db_table
    name = schema_editor._create_index_name(table, [field], suffix="_like")
    return schema_editor.quote_name(name), schema_editor.quote_name(table)


def forwards(apps, schema_editor):
    events = apps.get_model("payments", "StripeEvent")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.add_index(events, OBJECT_INDEX)
        return
    schema_editor.execute(OBJECT_INDEX.create_sql(events, schema_editor, concurrently=True))
    for model_name, field in PATTERN_INDEXES:
        name, _ = _pattern_index(apps, schema_editor, model_name, field)
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def backwards(apps, schema_editor):
    events = apps.get_model("payments", "StripeEvent")
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.remove_index(events, OBJECT_INDEX)
        return
    for model_name, field in PATTERN_INDEXES:
        name, table = _pattern_index(apps, schema_editor, model_name, field)
        column = schema_editor.quote_name(field)
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name}"
            f" ON {table} ({column} varchar_pattern_ops)"
        )
    schema_editor.execute(OBJECT_INDEX.remove_sql(events, schema_editor, concurrently=True))


class Migration(migrations.Migration):
    atomic = False  # CREATE and DROP INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [("payments", "0004_payment_kind_extension")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="stripeevent", index=OBJECT_INDEX)],
            database_operations=[migrations.RunPython(forwards, backwards)],
        )
    ]
