"""Extending a booking: a later end in the same spot, the extra time paid on the
booking's card (held, or charged at once like the booking would be), against
localstripe; several payments per reservation settled as one purse."""

from __future__ import annotations

import re
import threading
from collections import Counter
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core import mail
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from config.errors import ApplicationError
from lots.services import lot_facts_set
from parking.models import User
from payments.models import Payment, PaymentAttempt
from payments.services import payment_operations_retry
from reservations.models import Reservation, ReservationEvent, ReservationExtension, Status
from reservations.services import (
    payment_reference,
    reservation_arrive,
    reservation_cancel,
    reservation_complete,
    reservation_create,
    reservation_depart,
    reservation_extend,
    reservation_mark_no_show,
    reservation_refund,
)
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.payments.stripe_proxy import StripeProxy
from tests.reservations.helpers import book, overlapping_pairs
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)

HOUR = timedelta(hours=1)


@pytest.fixture
def paid(stripe, lot, driver):
    """A confirmed booking of 2 hours (500 at 250 an hour), its card held."""
    start = (timezone.now() + HOUR).replace(microsecond=0)
    reservation = book(driver, lot, start=start, hours=2, vehicle_plate="AB-123-CD")
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation.refresh_from_db()
    assert (reservation.status, reservation.price_amount) == (Status.CONFIRMED, 500)
    return reservation


def _url(reservation) -> str:
    return f"/api/v1/reservations/{reservation.code}/extend"


def _payments(reservation) -> list[Payment]:
    prefix = payment_reference(reservation)
    return list(Payment.objects.filter(reference__startswith=prefix).order_by("pk"))


def _kept(stripe, reservation) -> int:
    return sum(
        stripe.kept(p.payment_intent_id) for p in _payments(reservation) if p.payment_intent_id
    )


def _open_intents(stripe) -> list[str]:
    return [i["id"] for i in stripe.intents() if i["status"] not in ("succeeded", "canceled")]


def test_extending_holds_the_extra_price_on_the_booking_card_and_answers_the_new_end(
    stripe, paid, driver_api
):
    new_end = paid.end + 2 * HOUR
    mail.outbox.clear()

    answer = driver_api.post(_url(paid), {"end": new_end.isoformat()}, format="json")

    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["end"] == new_end.isoformat().replace("+00:00", "Z")
    assert body["price"] == {"amount": 1000, "currency": "eur"}
    assert body["extension"]["price"] == {"amount": 500, "currency": "eur"}
    assert body["extension"]["number"] == 1
    assert body["extension"]["charged_at_once"] is False
    assert body["status"] == "confirmed"
    # What is on the card: the booking's hold and the extension's.
    assert body["payment"]["amount_authorised"] == 1000
    assert body["payment"]["status"] == "authorised"
    reservation = Reservation.objects.get(pk=paid.pk)
    assert (reservation.end, reservation.occupied_until) == (new_end, new_end)
    booking, extension = _payments(paid)
    assert (extension.kind, extension.status, extension.amount_authorised) == (
        "extension",
        "authorised",
        500,
    )
    assert extension.payment_method_id == booking.payment_method_id
    assert stripe.intent(extension.payment_intent_id)["status"] == "requires_capture"
    assert stripe.intent(extension.payment_intent_id)["amount"] == 500
    # Staff see it in the audit trail; the driver gets an e-mail.
    event = ReservationEvent.objects.filter(reservation=paid).last()
    assert event.data["extended_to"] == new_end.isoformat()
    assert event.data["charge"] == 500
    assert [m.subject for m in mail.outbox] == [
        f"Extended until {new_end.astimezone(paid.lot.tz):%a %-d %b %Y, %H:%M}: "
        f"reservation {paid.code} – {paid.lot.name}"
    ]
    assert "New total:         €10.00" in mail.outbox[0].body


def test_a_parked_car_extended_then_leaving_pays_the_whole_longer_window(stripe, paid):
    reservation_arrive(reservation_id=paid.pk, at=paid.start)
    with time_machine.travel(paid.start + HOUR, tick=False):
        reservation_extend(reservation_id=paid.pk, end=paid.end + 3 * HOUR)
        reservation_extend(reservation_id=paid.pk, end=paid.end + 4 * HOUR)
    reservation_depart(reservation_id=paid.pk, at=paid.end + 3 * HOUR)

    reservation = Reservation.objects.get(pk=paid.pk)
    assert (reservation.status, reservation.settlement) == ("completed", "settled")
    assert reservation.amount_due == 6 * 250 == reservation.price_amount
    assert reservation.overstay_amount == 0
    assert [(p.kind, p.amount_captured) for p in _payments(paid)] == [
        ("booking", 500),
        ("extension", 750),
        ("extension", 250),
    ]
    assert _kept(stripe, paid) == 1500
    assert _open_intents(stripe) == []


def test_a_no_show_after_an_extension_pays_the_first_24_hours_from_the_holds_in_order(stripe, paid):
    reservation_extend(reservation_id=paid.pk, end=paid.start + 30 * HOUR)
    reservation = Reservation.objects.get(pk=paid.pk)
    assert reservation.no_show_amount == 2000  # 24 hours, capped at the daily maximum

    reservation_mark_no_show(reservation_id=paid.pk, at=paid.start + 61 * timedelta(minutes=1))

    assert [(p.kind, p.status, p.amount_captured) for p in _payments(paid)] == [
        ("booking", "captured", 500),
        ("extension", "captured", 1500),
    ]
    assert _kept(stripe, paid) == 2000
    assert _open_intents(stripe) == []


def test_cancelling_before_the_start_releases_the_booking_and_every_extension(stripe, paid):
    reservation_extend(reservation_id=paid.pk, end=paid.end + HOUR)
    reservation_cancel(reservation_id=paid.pk)

    assert {p.status for p in _payments(paid)} == {"canceled"}
    assert _kept(stripe, paid) == 0
    assert _open_intents(stripe) == []


def test_an_extension_past_a_card_holds_life_is_charged_at_once_and_refunded_if_not_owed(
    stripe, paid, settings
):
    settings.CARD_HOLD_MAX_DAYS = 1
    result = reservation_extend(reservation_id=paid.pk, end=paid.start + 26 * HOUR)
    assert result.extension.charged_at_once is True
    extension = _payments(paid)[1]
    assert (extension.capture_mode, extension.status, extension.amount_captured) == (
        "immediate",
        "captured",
        2000 + 500 - 500,  # 26 h: 2000 for the first day, 500 for two more hours
    )

    # The booking's hold would lapse before the new end: it is charged now too.
    booking = _payments(paid)[0]
    assert (booking.status, booking.amount_captured) == ("captured", 500)

    reservation_cancel(reservation_id=paid.pk)  # before the start: nothing owed

    assert [(p.kind, p.amount_net) for p in _payments(paid)] == [("booking", 0), ("extension", 0)]
    assert _kept(stripe, paid) == 0


def test_staff_refunds_reach_the_extensions_charge_first(stripe, paid):
    reservation_arrive(reservation_id=paid.pk, at=paid.start)
    reservation_extend(reservation_id=paid.pk, end=paid.end + 2 * HOUR)
    reservation_depart(reservation_id=paid.pk, at=paid.end + HOUR)

    reservation_refund(reservation_id=paid.pk, amount=600, actor_user=None)

    assert [(p.kind, p.amount_net) for p in _payments(paid)] == [
        ("booking", 400),
        ("extension", 0),
    ]
    assert _kept(stripe, paid) == 400


def test_the_spot_booked_after_the_end_refuses_the_extension_and_changes_nothing(
    stripe, paid, driver_api
):
    lot = paid.lot
    # Fill the other spots and the booked spot right after the end.
    other = UserFactory()
    following = []
    for _ in range(3):
        following.append(book(other, lot, start=paid.end, hours=1))
    assert paid.spot_id in {r.spot_id for r in following}

    answer = driver_api.post(_url(paid), {"end": (paid.end + HOUR).isoformat()}, format="json")

    assert answer.status_code == 409
    assert answer.json()["code"] == "spot_taken_after"
    reservation = Reservation.objects.get(pk=paid.pk)
    assert (reservation.end, reservation.price_amount) == (paid.end, 500)
    assert len(_payments(paid)) == 1
    assert not ReservationExtension.objects.exists()


def test_a_lapsed_unpaid_hold_after_the_end_does_not_stop_an_extension(stripe, paid, settings):
    blocker = book(UserFactory(), paid.lot, start=paid.end, hours=1)
    Reservation.objects.filter(pk=blocker.pk).update(spot=paid.spot)
    later = timezone.now() + timedelta(minutes=settings.HOLD_TTL_MINUTES + 1)
    with time_machine.travel(later, tick=False):
        result = reservation_extend(reservation_id=paid.pk, end=paid.end + HOUR)
    assert result.reservation.end == paid.end + HOUR
    assert Reservation.objects.get(pk=blocker.pk).status == Status.EXPIRED


def test_once_the_end_has_passed_it_is_too_late(stripe, paid, driver_api):
    reservation_arrive(reservation_id=paid.pk, at=paid.start)
    with time_machine.travel(paid.end + timedelta(minutes=1), tick=False):
        answer = driver_api.post(_url(paid), {"end": (paid.end + HOUR).isoformat()}, format="json")
    assert answer.status_code == 409
    assert answer.json()["code"] == "extension_too_late"


@pytest.mark.parametrize(
    ("end", "code"),
    [
        (lambda r: r.end.isoformat(), "end_not_later"),
        (lambda r: (r.end - HOUR).isoformat(), "end_not_later"),
        (lambda r: (r.start + timedelta(days=31)).isoformat(), "window_too_long"),
        (lambda r: (r.end + HOUR).replace(tzinfo=None).isoformat(), "naive_datetime"),
        (lambda r: "tomorrow", "invalid"),
    ],
)
def test_a_bad_or_earlier_end_is_a_400_with_a_code(stripe, paid, driver_api, end, code):
    answer = driver_api.post(_url(paid), {"end": end(paid)}, format="json")
    assert answer.status_code == 400, answer.json()
    assert answer.json()["code"] == code or (code == "invalid" and answer.json()["code"])
    assert Reservation.objects.get(pk=paid.pk).end == paid.end


def test_only_a_confirmed_or_parked_booking_can_be_extended(stripe, lot, driver, driver_api):
    unpaid = book(driver, lot)
    answer = driver_api.post(_url(unpaid), {"end": (unpaid.end + HOUR).isoformat()}, format="json")
    assert (answer.status_code, answer.json()["code"]) == (409, "illegal_transition")


def test_another_drivers_booking_is_not_found(stripe, paid, api):
    stranger = UserFactory()
    api.force_authenticate(stranger)
    answer = api.post(_url(paid), {"end": (paid.end + HOUR).isoformat()}, format="json")
    assert answer.status_code == 404


def test_a_declined_card_leaves_the_booking_unchanged_and_nothing_held(stripe, paid, driver_api):
    # The card on file has been stopped since the booking was paid.
    booking = _payments(paid)[0]
    declining = stripe.card(DECLINED_CARD)
    stripe.client.v1.payment_methods.attach(declining, params={"customer": booking.customer_id})
    Payment.objects.filter(pk=booking.pk).update(payment_method_id=declining)

    answer = driver_api.post(_url(paid), {"end": (paid.end + HOUR).isoformat()}, format="json")

    assert answer.status_code == 409
    assert answer.json()["code"] == "payment_declined"
    reservation = Reservation.objects.get(pk=paid.pk)
    assert (reservation.end, reservation.price_amount) == (paid.end, 500)
    extension = ReservationExtension.objects.get()
    assert extension.state == "declined"
    # The declined attempt's intent is closed at Stripe: no orphan hold.
    attempt = PaymentAttempt.objects.get(payment__kind="extension")
    assert attempt.canceled_at is not None
    assert stripe.intent(attempt.intent_id)["status"] == "canceled"
    assert _open_intents(stripe) == [booking.payment_intent_id]
    # The booking still settles as before.
    reservation_cancel(reservation_id=paid.pk)
    assert _open_intents(stripe) == []
    assert _kept(stripe, paid) == 0


def test_the_same_idempotency_key_extends_once(stripe, paid, driver_api):
    body = {"end": (paid.end + HOUR).isoformat()}
    first = driver_api.post(_url(paid), body, format="json", HTTP_IDEMPOTENCY_KEY="ext-1")
    again = driver_api.post(_url(paid), body, format="json", HTTP_IDEMPOTENCY_KEY="ext-1")

    assert (first.status_code, again.status_code) == (200, 200)
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["extension"] == first.json()["extension"]
    assert ReservationExtension.objects.count() == 1
    assert len(_payments(paid)) == 2

    other = {"end": (paid.end + 2 * HOUR).isoformat()}
    reused = driver_api.post(_url(paid), other, format="json", HTTP_IDEMPOTENCY_KEY="ext-1")
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")


def test_the_extension_is_in_the_api_schema(api):
    schema = api.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/reservations/{reservation_id}/extend"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    components = schema["components"]["schemas"]
    assert list(components[request.rsplit("/", 1)[1]]["properties"]) == ["end"]
    assert "extension" in components[response.rsplit("/", 1)[1]]["properties"]


# --- races, for real, on PostgreSQL ------------------------------------------------------


def _at_once(jobs):
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(i, job):
        try:
            barrier.wait(timeout=30)
            results[i] = job()
        except ApplicationError as exc:
            results[i] = exc.code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
def test_extensions_racing_each_other_apply_one_at_a_time_and_charge_only_what_applied(stripe):
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot)
    driver = UserFactory()
    start = (timezone.now() + HOUR).replace(microsecond=0)
    reservation = book(driver, lot, start=start, hours=2)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())

    ends = [reservation.end + timedelta(minutes=30 * (i + 1)) for i in range(8)]
    results = _at_once(
        [
            lambda end=end: (
                reservation_extend(reservation_id=reservation.pk, end=end).reservation.end
            )
            for end in ends
        ]
    )

    won = [r for r in results if not isinstance(r, str)]
    lost = Counter(r for r in results if isinstance(r, str))
    assert len(won) >= 1, results
    # Refused: another was being paid, or had moved the end past this one's.
    assert set(lost) <= {"extension_in_progress", "reservation_changed", "end_not_later"}, results
    final = Reservation.objects.get(pk=reservation.pk)
    applied = ReservationExtension.objects.filter(state="applied").order_by("number")
    assert final.end == applied.last().new_end
    # Each applied extension starts where the one before it ended.
    assert [e.old_end for e in applied] == [reservation.end, *[e.new_end for e in applied][:-1]]
    # What is held is exactly the price of the longer window; nothing else.
    held = Payment.objects.filter(status="authorised").values_list("amount", flat=True)
    assert sum(held) == final.price_amount
    authorised = Payment.objects.filter(status="authorised")
    assert sorted(_open_intents(stripe)) == sorted(
        authorised.values_list("payment_intent_id", flat=True)
    )
    assert overlapping_pairs() == 0


@pytest.mark.postgres
def test_an_extension_racing_new_bookings_for_the_same_time_never_overlaps(stripe):
    lot = LotFactory(currency="usd")
    RateFactory(lot=lot, hourly_amount=300, daily_max_amount=2400)
    SpotFactory(lot=lot)  # one spot: the extension and the bookings want the same time
    driver = UserFactory()
    start = (timezone.now() + HOUR).replace(microsecond=0)
    reservation = book(driver, lot, start=start, hours=2)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    others = UserFactory.create_batch(6)

    def extend():
        return (
            "extended"
            if reservation_extend(reservation_id=reservation.pk, end=reservation.end + 2 * HOUR)
            else None
        )

    def booker(user, offset):
        def job():
            reservation_create(
                user=user,
                lot_id=lot.slug,
                vehicle_type="car",
                start=reservation.end + timedelta(minutes=offset),
                end=reservation.end + timedelta(minutes=offset + 60),
            )
            return "booked"

        return job

    results = _at_once([extend, *[booker(u, 10 * i) for i, u in enumerate(others)]])

    outcome = Counter(results)
    assert outcome["extended"] + outcome["booked"] == 1, results
    assert set(outcome) <= {"extended", "booked", "no_spot_available", "spot_taken_after"}
    assert overlapping_pairs() == 0
    final = Reservation.objects.get(pk=reservation.pk)
    if outcome["extended"]:
        assert final.end == reservation.end + 2 * HOUR
    else:
        assert final.end == reservation.end
        # The lost extension holds nothing on the card.
        assert not Payment.objects.filter(kind="extension", status="authorised").exists()


def test_staff_see_the_extension_in_the_audit_trail_and_its_payment(stripe, paid, client):
    reservation_extend(reservation_id=paid.pk, end=paid.end + HOUR)
    boss = User.objects.create_superuser(email="boss@parkspot.test", password="x-secret-pw")
    client.force_login(boss)

    page = client.get(reverse("admin:reservations_reservation_change", args=[paid.pk]))

    content = page.content.decode()
    assert page.status_code == 200
    assert "Audit trail" in content
    assert "extended_to" in content
    assert re.search(r"Extension: authorised (€2\.50|2\.50 EUR)", content)


def test_stripe_down_mid_extension_then_the_same_request_finishes_it(
    stripe, paid, driver_api, settings
):
    proxy = StripeProxy(stripe.url)
    try:
        settings.STRIPE_API_BASE = proxy.url
        proxy.fail("POST", "/v1/payment_intents")
        body = {"end": (paid.end + HOUR).isoformat()}

        down = driver_api.post(_url(paid), body, format="json", HTTP_IDEMPOTENCY_KEY="k-down")

        assert down.status_code == 503
        assert Reservation.objects.get(pk=paid.pk).end == paid.end
        assert ReservationExtension.objects.get().state == "pending"
        # Another extension waits for this one rather than paying twice.
        other = driver_api.post(_url(paid), body, format="json", HTTP_IDEMPOTENCY_KEY="k-other")
        assert (other.status_code, other.json()["code"]) == (409, "extension_in_progress")

        proxy.heal()
        # Until the retry job has asked Stripe what became of the call, a
        # retry is told to wait; then the same request finishes the extension.
        soon = driver_api.post(_url(paid), body, format="json", HTTP_IDEMPOTENCY_KEY="k-down")
        assert (soon.status_code, soon.json()["code"]) == (409, "payment_in_progress")
        with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=True):
            assert payment_operations_retry() == 1
            again = driver_api.post(_url(paid), body, format="json", HTTP_IDEMPOTENCY_KEY="k-down")
    finally:
        proxy.close()

    assert again.status_code == 200, again.json()
    assert Reservation.objects.get(pk=paid.pk).end == paid.end + HOUR
    assert [p.status for p in _payments(paid)] == ["authorised", "authorised"]
    assert len([i for i in stripe.intents() if i["amount"] == 250]) == 1  # charged once


def test_an_extension_left_pending_by_an_outage_is_finished_by_the_retry_job(
    stripe, paid, driver_api, settings
):
    proxy = StripeProxy(stripe.url)
    try:
        settings.STRIPE_API_BASE = proxy.url
        proxy.fail("POST", "/v1/payment_intents")
        body = {"end": (paid.end + HOUR).isoformat()}
        down = driver_api.post(_url(paid), body, format="json", HTTP_IDEMPOTENCY_KEY="k-down")
        assert down.status_code == 503
        proxy.heal()
        # The driver never tries again: the retry job learns the card was
        # authorised, and the extension the driver asked for is applied.
        with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=True):
            assert payment_operations_retry() == 1
    finally:
        proxy.close()

    assert ReservationExtension.objects.get().state == "applied"
    reservation = Reservation.objects.get(pk=paid.pk)
    assert (reservation.end, reservation.price_amount) == (paid.end + HOUR, 750)
    assert [p.status for p in _payments(paid)] == ["authorised", "authorised"]


def test_a_pending_extension_whose_time_was_taken_meanwhile_is_refused_and_released(
    stripe, paid, driver_api, settings
):
    proxy = StripeProxy(stripe.url)
    try:
        settings.STRIPE_API_BASE = proxy.url
        proxy.fail("POST", "/v1/payment_intents")
        body = {"end": (paid.end + HOUR).isoformat()}
        assert driver_api.post(_url(paid), body, format="json").status_code == 503
        proxy.heal()
        # Meanwhile someone books every spot right after the end.
        for _ in range(3):
            book(UserFactory(), paid.lot, start=paid.end, hours=1)
        with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=True):
            payment_operations_retry()
    finally:
        proxy.close()

    extension = ReservationExtension.objects.get()
    assert (extension.state, extension.error_code) == ("refused", "spot_taken_after")
    assert Reservation.objects.get(pk=paid.pk).end == paid.end
    assert [p.status for p in _payments(paid)] == ["authorised", "canceled"]
    assert overlapping_pairs() == 0


def test_an_extension_past_the_lots_closing_time_is_refused_and_changes_nothing(
    stripe, lot, driver, driver_api
):
    paris = ZoneInfo("Europe/Paris")
    # Wednesday 4 March 2026, 17:00 in Paris; the lot closes at 20:00 every day.
    with time_machine.travel(datetime(2026, 3, 4, 17, 0, tzinfo=paris), tick=False):
        lot_facts_set(lot=lot, opening_hours=[(day, time(7), time(20)) for day in range(7)])
        start = datetime(2026, 3, 4, 17, 30, tzinfo=paris)
        reservation = book(driver, lot, start=start, hours=2)
        reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())

        answer = driver_api.post(
            _url(reservation),
            {"end": datetime(2026, 3, 4, 21, 0, tzinfo=paris).isoformat()},
            format="json",
        )
        within = driver_api.post(
            _url(reservation),
            {"end": datetime(2026, 3, 4, 20, 0, tzinfo=paris).isoformat()},
            format="json",
        )

    assert answer.status_code == 409
    assert answer.json()["code"] == "outside_opening_hours"
    assert within.status_code == 200
    assert Reservation.objects.get(pk=reservation.pk).end == datetime(
        2026, 3, 4, 20, 0, tzinfo=paris
    )
    assert ReservationExtension.objects.count() == 1


def test_an_extension_is_charged_at_the_flex_rates_in_force_when_booked(
    stripe, lot, driver_api, driver
):
    from lots.models import RateRule
    from lots.services import rate_rule_save

    every_hour = rate_rule_save(
        rule=RateRule(
            lot=lot,
            name="high season",
            weekdays=0b1111111,
            start_time=time(0),
            end_time=time(0),
            hourly_amount=400,
        )
    )
    start = (timezone.now() + HOUR).replace(microsecond=0)
    reservation = book(driver, lot, start=start, hours=2)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    every_hour.hourly_amount = 900  # after the booking: changes nothing booked
    rate_rule_save(rule=every_hour)

    answer = driver_api.post(
        _url(reservation), {"end": (reservation.end + 2 * HOUR).isoformat()}, format="json"
    )

    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["extension"]["price"] == {"amount": 800, "currency": "eur"}
    assert body["price"] == {"amount": 1600, "currency": "eur"}
    reservation.refresh_from_db()
    assert (reservation.price_amount, reservation.no_show_amount) == (1600, 1600)
    assert [p.amount for p in _payments(reservation)] == [800, 800]  # booking, extension
