"""What reservations tell an operator (served by /metrics, config/metrics.py).

Counters are moved by the services where things happen, once the change has
committed: a booking made or refused (booking.py), and every status write
(status.write_status, the one primitive they all go through). Gauges that are
facts of the database (holds open, cars parked, settlements open, when the
sweeps last ran and how far behind they are) are read by `facts()` when
/metrics is asked, in a fixed number of queries on partial indexes and the
sweeps' heartbeat, however many reservations there are.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from config.metrics import count_on_commit, seconds_late, sweeps_overdue
from lots.constants import VehicleType
from reservations.models import Actor, Reservation, Settlement, Status, SweepRun

BOOKINGS_MADE = Counter(
    "parkspot_bookings_made",
    "Bookings made: a spot held for a window until it is paid, by vehicle type.",
    ["vehicle_type"],
)
BOOKINGS_REFUSED = Counter(
    "parkspot_bookings_refused",
    "Bookings refused, by reason: the error code the driver was answered "
    "(no_spot_available, vehicle_already_booked, too_many_unpaid_holds, throttled, "
    "invalid input codes…).",
    ["reason"],
)
BOOKINGS_CONFIRMED = Counter(
    "parkspot_bookings_confirmed", "Bookings paid for (authorised or charged) and confirmed."
)
HOLDS_EXPIRED = Counter(
    "parkspot_holds_expired", "Unpaid holds that lapsed (the spot given back unpaid)."
)
ARRIVALS = Counter(
    "parkspot_arrivals",
    "Cars parked: reported by a gate or staff, or a car that stayed on into its next "
    "booking (scheduler), by actor.",
    ["actor"],
)
DEPARTURES = Counter(
    "parkspot_departures",
    "Cars that left (booking completed), by whether they stayed past their end.",
    ["overstayed"],
)
NO_SHOWS = Counter("parkspot_no_shows", "Confirmed bookings nobody arrived for by start + grace.")
CANCELLATIONS = Counter(
    "parkspot_cancellations",
    "Bookings cancelled, by actor: driver, staff, or system (displaced by a car that "
    "had not left).",
    ["actor"],
)

# Children made once (the label values are known): the hot path only calls inc().
_MADE = {vehicle_type: BOOKINGS_MADE.labels(vehicle_type) for vehicle_type in VehicleType.values}
for _reason in ("no_spot_available", "vehicle_already_booked", "too_many_unpaid_holds"):
    BOOKINGS_REFUSED.labels(_reason)  # shown at 0 before the first one
_ARRIVALS = {actor: ARRIVALS.labels(actor) for actor in (Actor.GATE, Actor.STAFF, Actor.SCHEDULER)}
_CANCELLATIONS = {
    actor: CANCELLATIONS.labels(actor) for actor in (Actor.DRIVER, Actor.STAFF, Actor.SYSTEM)
}
_DEPARTURES = {True: DEPARTURES.labels("true"), False: DEPARTURES.labels("false")}


def booking_made(*, vehicle_type: str) -> None:
    """Inside the booking's transaction: counted when it commits."""
    count_on_commit(_MADE.get(vehicle_type) or BOOKINGS_MADE.labels(vehicle_type))


def booking_refused(*, reason: str) -> None:
    """A refusal changes nothing: counted at once."""
    BOOKINGS_REFUSED.labels(reason[:64]).inc()


def status_written(reservation: Reservation, *, to: str, actor: str) -> None:
    """Inside the transition's transaction: counted when it commits."""
    if to == Status.CONFIRMED:
        count_on_commit(BOOKINGS_CONFIRMED)
    elif to == Status.PARKED:
        count_on_commit(_ARRIVALS.get(actor) or ARRIVALS.labels(actor))
    elif to == Status.COMPLETED:
        count_on_commit(_DEPARTURES[bool(reservation.overstay_amount)])
    elif to == Status.NO_SHOW:
        count_on_commit(NO_SHOWS)
    elif to == Status.CANCELLED:
        count_on_commit(_CANCELLATIONS.get(actor) or CANCELLATIONS.labels(actor))
    elif to == Status.EXPIRED:
        count_on_commit(HOLDS_EXPIRED)


# --- facts of the database, read when /metrics is asked ---------------------------------------

# How many of the oldest started confirmed bookings are looked at to tell how
# late the no-show sweep is (each lot has its own grace).
_NO_SHOW_CANDIDATES = 20


def facts(now: datetime) -> Iterator[GaugeMetricFamily]:
    """Five queries: four on partial indexes whose rows are few (unpaid holds,
    cars parked, open settlements, the oldest confirmed starts), and the sweeps'
    heartbeat (one row per sweep)."""
    holds = Reservation.objects.filter(status=Status.PENDING_PAYMENT).aggregate(
        open=Count("pk", filter=Q(hold_expires_at__gt=now)),
        oldest_lapsed=Min("hold_expires_at", filter=Q(hold_expires_at__lte=now)),
    )
    parked = Reservation.objects.filter(status=Status.PARKED).aggregate(
        parked=Count("pk"), overstaying=Count("pk", filter=Q(end__lte=now))
    )
    settlements = Reservation.objects.filter(
        settlement__in=(Settlement.PENDING, Settlement.ATTENTION)
    ).aggregate(
        pending=Count("pk", filter=Q(settlement=Settlement.PENDING)),
        attention=Count("pk", filter=Q(settlement=Settlement.ATTENTION)),
        oldest_due=Min(
            "settlement_next_at",
            filter=Q(settlement=Settlement.PENDING, settlement_next_at__lte=now),
        ),
    )
    started = (
        Reservation.objects.filter(status=Status.CONFIRMED, start__lte=now)
        .order_by("start")
        .values_list("start", "lot__no_show_grace_minutes")[:_NO_SHOW_CANDIDATES]
    )
    runs = list(SweepRun.objects.order_by("name").values_list("name", "last_run_at"))
    default_grace = settings.NO_SHOW_GRACE_MINUTES
    no_shows_due = [
        start + timedelta(minutes=default_grace if grace is None else grace)
        for start, grace in started
    ]

    yield _gauge(
        "parkspot_holds_open",
        "Unpaid bookings holding a spot now (their hold has not lapsed).",
        holds["open"],
    )
    yield _gauge("parkspot_cars_parked", "Cars in the lots now (parked).", parked["parked"])
    yield _gauge(
        "parkspot_cars_overstaying",
        "Cars parked past the end of their booking (they hold their spot until they leave).",
        parked["overstaying"],
    )
    yield _gauge(
        "parkspot_settlements_pending",
        "Finished bookings whose payment is still being brought to what is owed.",
        settlements["pending"],
    )
    yield _gauge(
        "parkspot_settlements_needing_attention",
        "Settlements that retrying cannot finish (Stripe refused a capture, a declined "
        "overstay charge): staff follow them up in the admin.",
        settlements["attention"],
    )
    yield sweeps_overdue(
        {
            "expire_lapsed_holds": seconds_late(now, holds["oldest_lapsed"]),
            "declare_no_shows": seconds_late(now, min(no_shows_due, default=None)),
            "settle_payments": seconds_late(now, settlements["oldest_due"]),
        }
    )
    age = GaugeMetricFamily(
        "parkspot_sweep_age_seconds",
        "Seconds since each scheduled sweep last ran (its heartbeat, reservations."
        "SweepRun, which /readyz reads too): below SWEEP_INTERVAL_SECONDS while beat "
        "and a worker run; a sweep that never ran is not listed.",
        labels=["sweep"],
    )
    for name, last_run_at in runs:
        age.add_metric([name], max((now - last_run_at).total_seconds(), 0.0))
    yield age


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)
