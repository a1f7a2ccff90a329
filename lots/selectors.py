"""Reads about lots."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from config.errors import NotFound
from lots.constants import VehicleType
from lots.models import Lot, LotStaff, Rate


def lot_list(*, city: str | None = None, vehicle_type: str | None = None) -> QuerySet[Lot]:
    lots = Lot.objects.filter(is_active=True)
    if city:
        lots = lots.filter(city__iexact=city.strip())
    if vehicle_type:
        lots = lots.filter(
            rates__vehicle_type=vehicle_type,
            spots__vehicle_type=vehicle_type,
            spots__is_active=True,
        ).distinct()
    return lots.order_by("slug")


def active_lots(*, lot_id: str) -> QuerySet[Lot]:
    """The active lot with this public id (none for ids no lot can have, such as
    strings with NUL bytes, which PostgreSQL refuses outright)."""
    if "\x00" in lot_id:
        return Lot.objects.none()
    return Lot.objects.filter(slug=lot_id, is_active=True)


def lot_get(*, lot_id: str) -> Lot:
    """An active lot by its public id, with rates and active spot counts per type."""
    counts = {
        f"spots_{vt}": Count("spots", filter=Q(spots__is_active=True, spots__vehicle_type=vt))
        for vt in VehicleType.values
    }
    lot = (
        active_lots(lot_id=lot_id)
        .annotate(**counts)
        .prefetch_related(Prefetch("rates", queryset=Rate.objects.order_by("vehicle_type")))
        .first()
    )
    if lot is None:
        raise NotFound("There is no such lot.", code="lot_not_found")
    return lot


def spot_counts(lot: Lot) -> dict[str, int]:
    return {vt: getattr(lot, f"spots_{vt}", 0) for vt in VehicleType.values}


def lot_ids_for_staff(user) -> frozenset[int]:
    """Ids of the lots a staff user is a member of (LotStaff).

    Membership alone decides: callers treat superusers, who see every lot, apart.
    Inactive or anonymous users staff nothing.
    """
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    return frozenset(LotStaff.objects.filter(user=user).values_list("lot_id", flat=True))
