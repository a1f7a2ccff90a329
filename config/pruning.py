"""Forgetting what is only kept for a while, oldest first.

Inboxes and replay records (Stripe's webhook events, Idempotency-Keys) grow by
rows every booking and are needed for days, not years. Their rows are written
in time order, so the old ones lead the table by primary key: walking it from
the start, in batches, finds them without an index on the time, which every
booking would otherwise write just so that a job can prune.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models

# The most rows one run deletes (about half a second): the worker runs one task
# at a time (--pool solo), and a backlog (the first run on a long history) must
# not hold back the sweeps that expire holds and charge no-shows. The next run
# goes on from there; at the spec's 200,000 bookings a day an hour adds ~8,000.
RUN_LIMIT = 50_000


def delete_oldest(
    model: type[models.Model],
    *,
    time_field: str,
    before: datetime,
    keep: models.Q | None = None,
    batch: int = 1000,
    limit: int = RUN_LIMIT,
) -> int:
    """Delete the rows of `model` whose `time_field` is before `before`, except
    those `keep` matches (they stay, whatever their age), walking the table by
    primary key and stopping at its first row that is not old, or once `limit`
    rows are deleted. A row written a moment out of order waits for the next
    run. Returns how many were deleted."""
    deleted, after = 0, None
    while deleted < limit:
        rows = model.objects.order_by("pk")
        if after is not None:
            rows = rows.filter(pk__gt=after)
        size = min(batch, limit - deleted)
        page = list(rows.values_list("pk", time_field)[:size])
        old = [pk for pk, at in page if at < before]
        if old:
            doomed = model.objects.filter(pk__in=old)
            if keep is not None:
                doomed = doomed.exclude(keep)
            deleted += doomed.delete()[0]
        if len(old) < size:
            break
        after = old[-1]
    return deleted
