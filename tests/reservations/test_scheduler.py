"""The scheduler's jobs as services: lapsed holds, no-shows (charged once,
whatever runs twice or at once), overstays, and payment retries."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from lots.services import gate_create
from payments.models import Payment
from payments.services import payment_operations_retry, payment_settle
from reservations.models import Reservation, Status
from reservations.services import (
    holds_expire_lapsed,
    no_shows_declare,
    payment_reference,
    reservation_arrive,
    reservation_complete,
    reservations_settle_pending,
)
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.reservations.helpers import book, overlapping_pairs

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_spot_lot():
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot)
    return lot


def _paid(stripe, lot, user, *, start, hours) -> Reservation:
    reservation = book(user, lot, start=start, hours=hours)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation.refresh_from_db()
    return reservation


def test_lapsed_holds_are_expired_and_their_spots_freed(stripe, one_spot_lot, driver):
    held = book(driver, one_spot_lot, start=timezone.now() + timedelta(hours=1))
    assert holds_expire_lapsed() == 0

    with time_machine.travel(held.hold_expires_at + timedelta(seconds=1)):
        assert holds_expire_lapsed() == 1
        assert holds_expire_lapsed() == 0
    held.refresh_from_db()
    assert held.status == Status.EXPIRED
    assert held.events.last().actor == "scheduler"


def test_a_no_show_is_charged_the_first_24_hours_once_and_frees_the_rest(
    stripe, one_spot_lot, driver
):
    start = timezone.now() + timedelta(hours=1)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=72)
    payment = Payment.objects.get(reference=payment_reference(reservation))
    assert payment.amount_authorised == 3 * 2400

    declared_at = start + timedelta(minutes=61)
    with time_machine.travel(declared_at, tick=False):
        assert no_shows_declare() == 1
        assert no_shows_declare() == 0  # the sweep again: nothing more happens

        reservation.refresh_from_db()
        payment.refresh_from_db()
        assert reservation.status == Status.NO_SHOW
        assert reservation.settled_at is not None
        assert (payment.status, payment.amount_captured) == ("captured", 2400)
        assert stripe.kept(payment.payment_intent_id) == 2400
        captures = payment.attempts

        # The rest of the window is free for someone else.
        later = book(UserFactory(), one_spot_lot, start=declared_at, hours=24)
    assert later.spot_id == reservation.spot_id
    assert overlapping_pairs() == 0
    assert Payment.objects.get(pk=payment.pk).attempts == captures


def test_two_sweeps_at_once_capture_once(stripe, one_spot_lot, driver):
    start = timezone.now() + timedelta(hours=1)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=30)
    barrier = threading.Barrier(2)
    results = []

    def sweep():
        try:
            barrier.wait(timeout=10)
            results.append(no_shows_declare(now=start + timedelta(hours=2)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [0, 1]
    reservations_settle_pending()  # whatever the loser left half-done
    payment = Payment.objects.get(reference=payment_reference(reservation))
    assert (payment.status, payment.amount_captured, payment.operation) == ("captured", 2400, "")
    assert stripe.kept(payment.payment_intent_id) == 2400


def test_someone_who_arrived_is_never_a_no_show(stripe, one_spot_lot, driver):
    start = timezone.now() + timedelta(minutes=30)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=3)
    reservation_arrive(reservation_id=reservation.pk, at=start)
    assert no_shows_declare(now=start + timedelta(hours=2)) == 0
    reservation.refresh_from_db()
    assert reservation.status == Status.PARKED


def test_an_overstay_is_charged_to_the_saved_card_at_the_hourly_rate(stripe, one_spot_lot, driver):
    start = timezone.now() + timedelta(minutes=1)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=2)
    _, key = gate_create(lot=one_spot_lot, name="Exit")
    gate = APIClient()
    gate.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    left_at = reservation.end + timedelta(hours=2, minutes=10)  # 3 started hours over

    with time_machine.travel(left_at):
        gate.post(
            "/api/v1/gate/arrivals",
            {"reservation_id": reservation.code, "time": start.isoformat()},
            format="json",
        )
        response = gate.post(
            "/api/v1/gate/departures",
            {"reservation_id": reservation.code, "time": left_at.isoformat()},
            format="json",
        )

    assert response.status_code == 200, response.content
    charges = response.json()["charges"]
    assert charges["price"]["amount"] == 600
    assert charges["overstay"]["amount"] == 900
    assert charges["total"] == {"amount": 1500, "currency": "usd"}
    booking = Payment.objects.get(reference=payment_reference(reservation), kind="booking")
    overstay = Payment.objects.get(reference=payment_reference(reservation), kind="overstay")
    assert (booking.amount_captured, overstay.amount_captured) == (600, 900)
    assert stripe.kept(booking.payment_intent_id) == 600
    assert stripe.kept(overstay.payment_intent_id) == 900
    assert overstay.payment_method_id == booking.payment_method_id


def test_a_capture_whose_outcome_was_unknown_is_finished_by_the_retry_job(
    stripe, one_spot_lot, driver, settings
):
    start = timezone.now() + timedelta(hours=1)
    reservation = _paid(stripe, one_spot_lot, driver, start=start, hours=2)
    reference = payment_reference(reservation)

    real_stripe = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # Stripe unreachable
    with pytest.raises(Exception, match="did not answer"):
        payment_settle(reference=reference, amount=300)
    payment = Payment.objects.get(reference=reference)
    assert (payment.status, payment.operation) == ("authorised", "capture")

    settings.STRIPE_API_BASE = real_stripe
    assert payment_operations_retry() == 0  # not due yet: backing off
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        assert payment_operations_retry() == 1
        assert payment_operations_retry() == 0
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured, payment.operation) == ("captured", 300, "")
    assert stripe.kept(payment.payment_intent_id) == 300


def test_a_lot_with_a_long_grace_never_crowds_out_another_lots_no_shows(driver):
    """The sweep looks at 500 at a time: a lot whose 600 started bookings are
    still within their long grace must not hide a no-show that is due elsewhere."""
    patient = LotFactory(no_show_grace_minutes=600)
    RateFactory(lot=patient)
    spots = SpotFactory.create_batch(600, lot=patient)
    strict = LotFactory(no_show_grace_minutes=0)
    RateFactory(lot=strict)
    strict_spot = SpotFactory(lot=strict)
    now = timezone.now()

    def confirmed(lot, spot, start):
        return Reservation(
            user=driver,
            lot=lot,
            spot=spot,
            vehicle_type="car",
            start=start,
            end=start + timedelta(hours=12),
            occupied_until=start + timedelta(hours=12),
            status=Status.CONFIRMED,
            price_amount=300,
            hourly_amount=300,
            daily_max_amount=2400,
            currency="usd",
        )

    Reservation.objects.bulk_create(
        confirmed(patient, spot, now - timedelta(hours=2)) for spot in spots
    )
    due = confirmed(strict, strict_spot, now - timedelta(minutes=1))
    due.save()

    assert no_shows_declare(now=now, limit=500) == 1
    due.refresh_from_db()
    assert due.status == Status.NO_SHOW
    assert not Reservation.objects.filter(lot=patient, status=Status.NO_SHOW).exists()


def test_every_job_beat_schedules_is_a_task_the_worker_runs(settings):
    from config.celery import app

    app.loader.import_default_modules()  # the apps' tasks.py, as a worker loads them
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "reservations.tasks.prune_idempotency_keys",
        "payments.tasks.prune_stripe_events",
    } <= scheduled
    assert scheduled <= set(app.tasks), scheduled - set(app.tasks)
