"""Writes about lots."""

from __future__ import annotations

from django.db.models import F

from lots.models import Lot


def lot_availability_changed(*, lot_id: int) -> None:
    """Invalidate every cached availability answer of the lot.

    Call it inside the transaction that changes what the lot can offer: the new
    version commits together with the change, so no reader sees one without the
    other. Run it last in the transaction to hold the lot row lock briefly.
    """
    Lot.objects.filter(pk=lot_id).update(availability_version=F("availability_version") + 1)
