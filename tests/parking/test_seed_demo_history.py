"""`seed_demo` also makes a past week and a coming week of bookings at every demo
lot, in every state, with their payments, so that the occupancy view, the
reports and the needs-attention page show something on first run."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db.models import F, Sum
from django.utils import timezone

from lots.models import Lot
from payments.models import Payment
from reservations.attention import lot_attention
from reservations.models import Reservation, ReservationEvent, Settlement, Status
from reservations.occupancy import local_today, lot_occupancy
from reservations.reports import lots_report, period_preset
from reservations.services import (
    no_shows_declare,
    reservations_settle_pending,
    unreported_exits_capture,
)
from reservations.services.demo import DEMO_DRIVER_DOMAIN
from tests.reservations.helpers import overlapping_pairs

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_every_lot_gets_bookings_in_every_state():
    output = seed()

    assert "Demo bookings (a past and a coming week)" in output
    for lot in Lot.objects.all():
        statuses = set(lot.reservations.values_list("status", flat=True))
        assert statuses == {
            Status.CONFIRMED,
            Status.PARKED,
            Status.COMPLETED,
            Status.NO_SHOW,
            Status.CANCELLED,
            Status.EXPIRED,
        }, lot.slug
        completed = lot.reservations.filter(status=Status.COMPLETED)
        assert completed.filter(departed_at__lt=F("end")).exists()  # left early
        assert completed.filter(departed_at__gt=F("end")).exists()  # overstayed
    assert overlapping_pairs() == 0


def test_payments_are_recorded_as_the_services_would():
    seed()

    by_reference = {}
    for payment in Payment.objects.all():
        by_reference.setdefault(payment.reference, {})[payment.kind] = payment
    for r in Reservation.objects.exclude(status=Status.EXPIRED):
        booking = by_reference[f"reservation:{r.code}"]["booking"]
        assert booking.amount == r.price_amount
        assert booking.payment_intent_id.startswith("pi_demo_")
        if r.settlement == Settlement.SETTLED:
            assert booking.amount_captured == r.amount_due, r.code
        if r.status == Status.NO_SHOW:
            assert booking.amount_captured == r.no_show_amount
        if r.status == Status.CONFIRMED:
            assert (booking.status, booking.amount_captured) == (Payment.Status.AUTHORISED, 0)
        overstay = by_reference[f"reservation:{r.code}"].get("overstay")
        assert (overstay.amount_captured if overstay else 0) == r.overstay_amount
    assert not Payment.objects.filter(
        reference__in=[
            f"reservation:{code}"
            for code in Reservation.objects.filter(status=Status.EXPIRED).values_list(
                "code", flat=True
            )
        ]
    ).exists()


def test_the_pages_have_something_to_show():
    seed()

    for lot in Lot.objects.all():
        attention = lot_attention(lot=lot)
        assert len(attention.overstayers) == 2, lot.slug
        assert len(attention.settlements) == 1
        assert len(attention.displaced) == 1
        report = lots_report(lots=[lot], period=period_preset("last7", local_today(lot))).lots[0]
        assert report.bookings > 100
        assert report.revenue_net > 0
        assert min(report.no_shows, report.overstays, report.cancelled) > 0
        assert 0.05 < report.occupancy_overall < 0.9
        assert report.lead_time.total_seconds() > 3600
        occupancy = lot_occupancy(lot=lot, day=local_today(lot))
        assert any(row.bars for row in occupancy.rows)


def test_running_it_again_makes_no_more():
    seed()
    counts = (
        Reservation.objects.count(),
        Payment.objects.count(),
        ReservationEvent.objects.count(),
        Payment.objects.aggregate(Sum("amount_captured")),
    )

    output = seed()

    assert "Demo bookings" not in output
    assert (
        Reservation.objects.count(),
        Payment.objects.count(),
        ReservationEvent.objects.count(),
        Payment.objects.aggregate(Sum("amount_captured")),
    ) == counts
    assert Reservation.objects.filter(user__email__endswith=DEMO_DRIVER_DOMAIN).count() == counts[0]


@pytest.mark.django_db(transaction=True)
def test_the_coming_week_settles_as_its_days_pass_without_new_items_for_staff(stripe):
    """The demo's payments were never at Stripe (pi_demo_…): as the beat's sweeps
    reach them they settle as bookkeeping, instead of piling up as failed
    settlements on the needs-attention page."""
    seed()
    before = {lot.slug: len(lot_attention(lot=lot).settlements) for lot in Lot.objects.all()}
    coming = Reservation.objects.filter(status=Status.CONFIRMED)
    assert coming.exists()
    coming_codes = list(coming.values_list("code", flat=True))

    with time_machine.travel(timezone.now() + timedelta(days=9), tick=False):
        for sweep in (no_shows_declare, unreported_exits_capture, reservations_settle_pending):
            while sweep(limit=500):
                pass
        after = {lot.slug: len(lot_attention(lot=lot).settlements) for lot in Lot.objects.all()}

    assert after == before  # only the one failed settlement each demo lot shows on purpose
    settled = Reservation.objects.filter(code__in=coming_codes)
    assert not settled.filter(settlement__in=(Settlement.PENDING, Settlement.ATTENTION)).exists()
    no_shows = settled.filter(status=Status.NO_SHOW)
    assert no_shows.exists()
    for r in no_shows:
        booking = Payment.objects.get(reference=f"reservation:{r.code}", kind="booking")
        assert (booking.status, booking.amount_captured) == ("captured", r.no_show_amount)
