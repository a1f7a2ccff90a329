"""Reserving on the website, a reservation's page, the list, and cancelling
(without Stripe: payments configured are covered in test_website_payments.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from parking.views import cancel_terms
from payments.models import Payment
from reservations.models import Reservation, Status
from reservations.services import payment_reference, reservation_cancel, reservation_confirm
from tests.factories import UserFactory
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # 10:00 in Paris


def reserve_data(**overrides) -> dict:
    return {
        "vehicle_type": "car",
        "start": "2026-03-05T10:00",
        "end": "2026-03-05T12:00",
        "idempotency_key": "form-1",
        **overrides,
    }


@pytest.fixture
def signed_in(client, driver):
    client.force_login(driver)
    return client


class TestReserve:
    def test_holds_a_spot_and_goes_to_payment(self, signed_in, driver, lot, frozen_now):
        response = signed_in.post(f"/lots/{lot.slug}/reserve/", reserve_data())
        reservation = Reservation.objects.get(user=driver)
        assert response.status_code == 302
        assert response["Location"] == f"/reservations/{reservation.code}/pay/"
        assert reservation.status == Status.PENDING_PAYMENT
        assert reservation.start == START
        assert reservation.end == START + timedelta(hours=2)
        assert reservation.price_amount == 500

    def test_pressing_reserve_twice_books_once(self, signed_in, driver, lot, frozen_now):
        first = signed_in.post(f"/lots/{lot.slug}/reserve/", reserve_data())
        second = signed_in.post(f"/lots/{lot.slug}/reserve/", reserve_data())
        assert first["Location"] == second["Location"]
        assert Reservation.objects.filter(user=driver).count() == 1

    def test_a_used_form_for_other_times_asks_to_check_again(
        self, signed_in, driver, lot, frozen_now
    ):
        signed_in.post(f"/lots/{lot.slug}/reserve/", reserve_data())
        response = signed_in.post(
            f"/lots/{lot.slug}/reserve/", reserve_data(end="2026-03-05T13:00")
        )
        assert response.status_code == 422
        html = response.content.decode()
        assert "already used for another booking" in html
        assert 'name="idempotency_key" value="form-1"' not in html  # a fresh key to retry
        assert Reservation.objects.filter(user=driver).count() == 1

    def test_puts_the_vehicle_plate_on_the_booking(self, signed_in, driver, lot, frozen_now):
        signed_in.post("/account/", {"plate": "ab-12 cd", "vehicle_type": "car"})
        vehicle = driver.vehicles.get()
        signed_in.post(f"/lots/{lot.slug}/reserve/", reserve_data(vehicle=vehicle.pk))
        assert Reservation.objects.get(user=driver).vehicle_plate == "AB12CD"

    def test_a_vehicle_already_booked_then_is_refused_next_to_the_vehicle(
        self, signed_in, driver, lot, frozen_now
    ):
        signed_in.post("/account/", {"plate": "ab-12 cd", "vehicle_type": "car"})
        vehicle = driver.vehicles.get()
        book(UserFactory(), lot, start=START, hours=2, vehicle_plate="AB12CD")
        response = signed_in.post(
            f"/lots/{lot.slug}/reserve/", reserve_data(vehicle=vehicle.pk, idempotency_key="v2")
        )
        assert response.status_code == 409
        html = response.content.decode()
        assert "The vehicle AB12CD already has a booking for part of that time." in html
        assert not Reservation.objects.filter(user=driver).exists()

    def test_the_last_spot_gone_is_said_with_a_way_forward(
        self, signed_in, driver, lot, frozen_now
    ):
        other = UserFactory()
        for _ in range(3):
            book(other, lot, start=START, hours=2)
        response = signed_in.post(f"/lots/{lot.slug}/reserve/", reserve_data())
        html = response.content.decode()
        assert response.status_code == 409
        assert "the last free car spot" in html
        assert "No car spot is free for that whole time." in html
        assert "see other car parks in" in html
        assert not Reservation.objects.filter(user=driver).exists()

    def test_a_bad_window_stays_on_the_page_with_the_reason(self, signed_in, lot, frozen_now):
        response = signed_in.post(
            f"/lots/{lot.slug}/reserve/", reserve_data(start="2026-03-01T10:00")
        )
        assert response.status_code == 400
        assert "This time has already passed at the lot." in response.content.decode()

    def test_needs_an_account(self, client, lot, frozen_now):
        response = client.post(f"/lots/{lot.slug}/reserve/", reserve_data())
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
        assert not Reservation.objects.exists()

    def test_is_protected_against_cross_site_requests(self, driver, lot, frozen_now):
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(driver)
        assert browser.post(f"/lots/{lot.slug}/reserve/", reserve_data()).status_code == 403

        page = browser.get(f"/lots/{lot.slug}/").content.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        response = browser.post(
            f"/lots/{lot.slug}/reserve/", {**reserve_data(), "csrfmiddlewaretoken": token}
        )
        assert response.status_code == 302
        assert Reservation.objects.filter(user=driver).count() == 1


class TestPayPageWithoutStripe:
    def test_says_card_payments_are_not_set_up_and_keeps_the_hold(
        self, signed_in, driver, lot, frozen_now
    ):
        reservation = book(driver, lot, start=START)
        response = signed_in.get(f"/reservations/{reservation.code}/pay/")
        html = response.content.decode()
        assert response.status_code == 200
        assert "Card payments are not set up on this site." in html
        assert "Your spot is still held" in html
        assert re.search(r'data-seconds-left="(89\d|900)"', html)  # 15 minutes
        assert "€5.00" in html

    def test_a_lapsed_hold_is_explained_with_a_way_to_book_again(
        self, signed_in, driver, lot, frozen_now
    ):
        reservation = book(driver, lot, start=START)
        frozen_now.shift(timedelta(minutes=16))
        html = signed_in.get(f"/reservations/{reservation.code}/pay/").content.decode()
        assert "Your hold has run out" in html
        assert "Nothing was charged." in html
        assert f"/lots/{lot.slug}/?vehicle_type=car&amp;start=2026-03-05T10%3A00" in html

    def test_a_paid_reservation_goes_to_its_pass(self, signed_in, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        reservation_confirm(reservation_id=reservation.pk)
        response = signed_in.get(f"/reservations/{reservation.code}/pay/")
        assert response["Location"] == f"/reservations/{reservation.code}/"

    def test_another_drivers_reservation_is_not_found(self, signed_in, lot, frozen_now):
        theirs = book(UserFactory(), lot, start=START)
        assert signed_in.get(f"/reservations/{theirs.code}/pay/").status_code == 404
        assert signed_in.get(f"/reservations/{theirs.code}/").status_code == 404
        assert signed_in.post(f"/reservations/{theirs.code}/cancel/").status_code == 404


class TestReservationPage:
    def test_the_pass_has_the_code_qr_spot_times_and_price(
        self, signed_in, driver, lot, frozen_now
    ):
        reservation = book(driver, lot, start=START, vehicle_plate="AB-123")
        reservation_confirm(reservation_id=reservation.pk)
        response = signed_in.get(f"/reservations/{reservation.code.lower()}/")
        assert response.status_code == 302  # the code is case-insensitive; one address
        html = signed_in.get(f"/reservations/{reservation.code}/").content.decode()
        assert f"<title>Your pass {reservation.code} · ParkSpot</title>" in html
        assert reservation.code in html
        assert '<svg role="img" focusable="false"' in html
        assert f"<title>QR code of reservation {reservation.code}</title>" in html
        assert reservation.spot.label in html
        assert "AB123" in html
        assert "Thu 5 Mar 2026, 10:00" in html
        assert "Thu 5 Mar 2026, 12:00" in html
        assert "€5.00" in html
        assert "Free cancellation until Thu 5 Mar 2026, 10:00 CET." in html

    def test_an_unpaid_reservation_asks_for_payment(self, signed_in, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        html = signed_in.get(f"/reservations/{reservation.code}/").content.decode()
        assert "This reservation is not paid yet." in html
        assert f"/reservations/{reservation.code}/pay/" in html
        assert '<svg role="img"' not in html  # no pass before payment

    def test_needs_an_account(self, client, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        response = client.get(f"/reservations/{reservation.code}/")
        assert response["Location"].startswith("/accounts/login/")


class TestMyReservations:
    def test_upcoming_and_past_with_amounts(self, signed_in, driver, lot, frozen_now):
        upcoming = book(driver, lot, start=START)
        reservation_confirm(reservation_id=upcoming.pk)
        Payment.objects.create(
            reference=payment_reference(upcoming),
            user=driver,
            currency="eur",
            amount=500,
            amount_authorised=500,
            status=Payment.Status.AUTHORISED,
        )
        lapsed = book(driver, lot, start=START + timedelta(days=1))
        frozen_now.shift(timedelta(minutes=20))  # its hold lapses (the new one's too)

        html = signed_in.get("/reservations/").content.decode()
        upcoming_part, past_part = html.split('id="past-title"')
        assert upcoming.code in upcoming_part
        assert "€5.00 on hold" in upcoming_part
        assert "Show pass" in upcoming_part
        assert lapsed.code in past_part
        assert ">Expired<" in past_part  # by the clock, before the sweep runs
        assert "Awaiting payment" not in past_part

    def test_an_empty_list_points_to_the_search(self, signed_in, frozen_now):
        html = signed_in.get("/reservations/").content.decode()
        assert "No upcoming reservations." in html
        assert 'href="/search/"' in html

    def test_three_queries_whatever_the_number(self, signed_in, driver, lot, frozen_now):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from reservations.selectors import reservation_overview_for_user

        for day in range(4):
            book(driver, lot, start=START + timedelta(days=day))
        with CaptureQueriesContext(connection) as captured:
            overview = reservation_overview_for_user(user=driver)
        assert len(overview.upcoming) == 4
        assert len(captured) == 3


class TestCancel:
    def test_shows_the_policy_then_cancels(self, signed_in, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        reservation_confirm(reservation_id=reservation.pk)
        page = signed_in.get(f"/reservations/{reservation.code}/cancel/").content.decode()
        assert "Cancelling now is free." in page
        assert "the €5.00 hold on your card is released" in page
        assert "Our policy: After your reservation starts, cancelling costs the no-show" in page

        response = signed_in.post(f"/reservations/{reservation.code}/cancel/")
        assert response["Location"] == f"/reservations/{reservation.code}/"
        reservation.refresh_from_db()
        assert reservation.status == Status.CANCELLED
        html = signed_in.get(response["Location"]).content.decode()
        assert f"Reservation {reservation.code} is cancelled." in html
        assert "Cancel reservation" not in html

    def test_a_finished_reservation_cannot_be_cancelled(self, signed_in, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        signed_in.post(f"/reservations/{reservation.code}/cancel/")
        response = signed_in.get(f"/reservations/{reservation.code}/cancel/", follow=True)
        assert "A cancelled reservation cannot be cancelled." in response.content.decode()

    def test_is_protected_against_cross_site_requests(self, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(driver)
        assert browser.post(f"/reservations/{reservation.code}/cancel/").status_code == 403
        reservation.refresh_from_db()
        assert reservation.status == Status.PENDING_PAYMENT


class TestCancelTerms:
    @pytest.fixture
    def confirmed(self, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        return reservation_confirm(reservation_id=reservation.pk).reservation

    def test_free_before_the_start(self, confirmed):
        terms = cancel_terms(confirmed, None, now=START - timedelta(minutes=1))
        assert terms.allowed
        assert terms.charge_amount == 0
        assert "the €5.00 hold on your card is released" in terms.detail

    def test_after_the_start_the_no_show_charge_when_the_policy_charges(self, confirmed, settings):
        settings.LATE_CANCEL_POLICY = "charge"
        terms = cancel_terms(confirmed, None, now=START + timedelta(minutes=1))
        assert terms.charge_amount == 500  # two hours: the no-show charge is the price
        assert "Cancelling now costs €5.00." in terms.detail
        assert "no-show charge of €5.00" in terms.policy

    def test_after_the_start_free_until_the_grace_ends_when_the_policy_refunds(
        self, confirmed, settings
    ):
        settings.LATE_CANCEL_POLICY = "refund"
        terms = cancel_terms(confirmed, None, now=START + timedelta(minutes=1))
        assert terms.charge_amount == 0
        assert "Cancelling now is free" in terms.detail
        assert terms.summary.startswith("Free cancellation until")

    def test_the_page_charges_what_cancelling_charges(self, confirmed, settings):
        settings.LATE_CANCEL_POLICY = "elapsed"
        moment = START + timedelta(minutes=70)  # two started hours
        terms = cancel_terms(confirmed, None, now=moment)
        result = reservation_cancel(reservation_id=confirmed.pk, at=moment)
        assert terms.charge_amount == result.reservation.amount_due == 500

    def test_charged_at_booking_means_refunded(self, confirmed):
        payment = Payment(capture_mode=Payment.CaptureMode.IMMEDIATE)
        terms = cancel_terms(confirmed, payment, now=START - timedelta(hours=1))
        assert "the €5.00 you paid is refunded in full" in terms.detail


class TestALapsedHoldByTheClock:
    """An unpaid hold past its deadline shows as expired at once, not "Awaiting
    payment" until the sweep runs (the sweep has not run in these tests)."""

    def test_the_list_and_the_page_say_expired(self, signed_in, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        frozen_now.shift(timedelta(minutes=16))
        reservation.refresh_from_db()
        assert reservation.status == Status.PENDING_PAYMENT  # not swept yet

        listing = signed_in.get("/reservations/").content.decode()
        page = signed_in.get(f"/reservations/{reservation.code}/").content.decode()
        for html in (listing, page):
            assert re.search(r'class="badge badge-neutral">Expired<', html)
            assert "Awaiting payment" not in html
        assert "The hold on this spot ran out before it was paid for." in page

    def test_a_hold_still_running_awaits_payment(self, signed_in, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        frozen_now.shift(timedelta(minutes=14))
        page = signed_in.get(f"/reservations/{reservation.code}/").content.decode()
        assert ">Awaiting payment<" in page


class TestVehiclesOnTheWayToBooking:
    LOT_PAGE = "?vehicle_type=car&start=2026-03-05T10:00&end=2026-03-05T12:00"

    def selected_vehicle(self, html: str) -> str:
        select = re.search(r'<select name="vehicle".*?</select>', html, re.S).group(0)
        chosen = re.search(r'<option value="([^"]*)"[^>]*selected', select)
        return chosen.group(1) if chosen else ""

    def test_a_single_saved_vehicle_is_chosen_not_not_now(self, signed_in, driver, lot, frozen_now):
        signed_in.post("/account/", {"plate": "ab-12 cd", "vehicle_type": "car"})
        vehicle = driver.vehicles.get()
        html = signed_in.get(f"/lots/{lot.slug}/{self.LOT_PAGE}").content.decode()
        assert self.selected_vehicle(html) == str(vehicle.pk)

    def test_a_vehicle_of_another_type_is_not_chosen(self, signed_in, driver, lot, frozen_now):
        signed_in.post("/account/", {"plate": "MOTO1", "vehicle_type": "motorcycle"})
        html = signed_in.get(f"/lots/{lot.slug}/{self.LOT_PAGE}").content.decode()
        assert self.selected_vehicle(html) == ""

    def test_adding_a_vehicle_returns_to_the_booking_and_its_plate_reaches_the_pass(
        self, signed_in, driver, lot, frozen_now
    ):
        lot_page = f"/lots/{lot.slug}/{self.LOT_PAGE}"
        html = signed_in.get(lot_page).content.decode()
        link = re.search(r'href="(/account/\?next=[^"]+)">Add your vehicle', html).group(1)
        link = link.replace("&amp;", "&")

        account = signed_in.get(link).content.decode()
        assert "we take you back to your booking" in account
        back = re.search(r'name="next" value="([^"]+)"', account).group(1).replace("&amp;", "&")
        response = signed_in.post(
            "/account/", {"plate": "ab-12 cd", "vehicle_type": "car", "next": back}
        )
        vehicle = driver.vehicles.get()
        assert response.status_code == 302
        assert response["Location"].startswith(f"/lots/{lot.slug}/?")
        assert "start=2026-03-05T10%3A00" in response["Location"]
        assert f"vehicle={vehicle.pk}" in response["Location"]

        html = signed_in.get(response["Location"]).content.decode()
        assert self.selected_vehicle(html) == str(vehicle.pk)
        key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
        signed_in.post(
            f"/lots/{lot.slug}/reserve/", reserve_data(vehicle=vehicle.pk, idempotency_key=key)
        )
        reservation = Reservation.objects.get(user=driver)
        reservation_confirm(reservation_id=reservation.pk)
        pass_html = signed_in.get(f"/reservations/{reservation.code}/").content.decode()
        assert '<span class="plate">AB12CD</span>' in pass_html

    def test_a_next_address_off_the_site_is_ignored(self, signed_in, driver, lot, frozen_now):
        response = signed_in.post(
            "/account/", {"plate": "X1", "vehicle_type": "car", "next": "https://evil.example/"}
        )
        assert response["Location"] == "/account/"
