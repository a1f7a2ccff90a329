"""The staff admin: every model's pages work, searches find, and the cancel action
goes through the reservation service and reports what happened."""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lots.models import Lot, Rate, Spot
from lots.services import rate_set, spots_add
from parking.models import ApiToken, User, Vehicle
from parking.services import api_token_create, vehicle_add
from payments.models import Payment, StripeCustomer, StripeEvent
from reservations.models import IdempotencyKey, Reservation, ReservationEvent, Status
from reservations.services import (
    reservation_arrive,
    reservation_confirm,
    reservation_create,
    reservation_depart,
)
from tests.factories import LotFactory, SpotFactory, UserFactory

pytestmark = pytest.mark.django_db


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def book(user, lot, *, hours_ahead: float = 2, **kwargs) -> Reservation:
    start = timezone.now() + timedelta(hours=hours_ahead)
    return reservation_create(
        user=user,
        lot_id=lot.slug,
        vehicle_type="car",
        start=start,
        end=start + timedelta(hours=2),
        **kwargs,
    ).reservation


def complete(reservation: Reservation) -> Reservation:
    reservation_confirm(reservation_id=reservation.pk)
    reservation_arrive(reservation_id=reservation.pk, at=reservation.start)
    reservation_depart(reservation_id=reservation.pk, at=reservation.start + timedelta(hours=1))
    reservation.refresh_from_db()
    assert reservation.status == Status.COMPLETED
    return reservation


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser(email="boss@parkspot.test", password="x-secret-pw")


@pytest.fixture
def staff_client(client, superuser):
    client.force_login(superuser)
    return client


@pytest.fixture
def pending(lot, driver):
    return book(driver, lot, vehicle_plate="AB-123-CD", idempotency_key="key-1")


@pytest.fixture
def data(lot, driver, pending):
    """One row of every model the admin shows."""
    SpotFactory(lot=lot, label="M-001", vehicle_type="motorcycle")
    vehicle_add(owner=driver, plate="ab 123 cd", vehicle_type="car", nickname="Blue Clio")
    api_token_create(email=driver.email, password="correct horse battery")
    Group.objects.create(name="Night shift")
    # Payment records as Stripe calls would have left them (no Stripe here).
    Payment.objects.create(
        reference=f"reservation:{pending.code}",
        user=driver,
        amount=pending.price_amount,
        currency=pending.currency,
        payment_intent_id="pi_test",
        customer_id="cus_test",
    )
    StripeCustomer.objects.create(user=driver, customer_id="cus_test")
    StripeEvent.objects.create(event_id="evt_test", type="payment_intent.succeeded")
    return {"lot": lot, "driver": driver, "reservation": pending}


# --- every page -------------------------------------------------------------------------


def test_every_admin_changelist_and_change_page_works_with_data(staff_client, data):
    checked = []
    for model, model_admin in admin.site._registry.items():
        response = staff_client.get(admin_url(model, "changelist"))
        assert response.status_code == 200, model
        assert response.context["cl"].result_count >= 1, model

        obj = model._default_manager.first()
        response = staff_client.get(admin_url(model, "change", obj.pk))
        assert response.status_code == 200, model

        request = response.wsgi_request
        if model_admin.has_add_permission(request):
            assert staff_client.get(admin_url(model, "add")).status_code == 200, model
        checked.append(model)

    assert {Lot, Spot, Rate, User, Vehicle, ApiToken} <= set(checked)
    assert {Reservation, ReservationEvent, IdempotencyKey} <= set(checked)


def test_lot_list_shows_spot_counts_in_one_query_whatever_the_number_of_lots(staff_client, lot):
    SpotFactory(lot=lot, label="M-001", vehicle_type="motorcycle")
    SpotFactory(lot=lot, label="C-099", vehicle_type="car", is_active=False)  # not counted

    response = staff_client.get(admin_url(Lot, "changelist"))
    assert "1 / 3 / 0" in response.content.decode()

    with CaptureQueriesContext(connection) as one_lot:
        staff_client.get(admin_url(Lot, "changelist"))
    for n in range(5):
        other = LotFactory()
        SpotFactory(lot=other, label=f"V-{n}", vehicle_type="van")
    with CaptureQueriesContext(connection) as six_lots:
        response = staff_client.get(admin_url(Lot, "changelist"))
    assert response.context["cl"].result_count == 6
    assert len(six_lots) == len(one_lot)


def test_lot_change_page_shows_counts_and_rates(staff_client, lot):
    response = staff_client.get(admin_url(Lot, "change", lot.pk))
    content = response.content.decode()
    assert "0 / 3 / 0" in content
    assert 'value="250"' in content  # the car rate, in the rate inline
    assert '<option value="Europe/Paris" selected>' in content


def test_reservation_list_shows_spot_label_and_price_with_currency(staff_client, pending):
    response = staff_client.get(admin_url(Reservation, "changelist"))
    content = response.content.decode()
    assert pending.code in content
    assert pending.spot.label in content
    assert "5.00 EUR" in content  # 2 hours at €2.50


def test_yen_prices_have_no_decimals(staff_client, driver):
    lot = LotFactory(slug="tokyo", timezone="Asia/Tokyo", currency="jpy")
    rate_set(lot=lot, vehicle_type="car", hourly_amount=600, daily_max_amount=3000)
    spots_add(lot=lot, vehicle_type="car", count=1, prefix="C")
    book(driver, lot)

    content = staff_client.get(admin_url(Reservation, "changelist")).content.decode()
    assert "1,200 JPY" in content
    content = staff_client.get(admin_url(Rate, "changelist")).content.decode()
    assert "600 JPY" in content
    assert "3,000 JPY" in content


def test_reservation_change_page_is_read_only_with_its_audit_trail(staff_client, pending):
    response = staff_client.get(admin_url(Reservation, "change", pending.pk))
    content = response.content.decode()

    assert response.status_code == 200
    assert pending.code in content
    assert "Audit trail" in content
    assert "Awaiting payment" in content
    assert "(Europe/Paris)" in content  # the window in the lot's time zone
    assert 'name="_save"' not in content
    assert 'name="status"' not in content
    assert 'name="price_amount"' not in content

    # A POST cannot change a read-only field either.
    staff_client.post(
        admin_url(Reservation, "change", pending.pk),
        {"status": "confirmed", "price_amount": "1", "events-TOTAL_FORMS": "0"},
    )
    pending.refresh_from_db()
    assert (pending.status, pending.price_amount) == (Status.PENDING_PAYMENT, 500)


def test_reservations_cannot_be_added_or_deleted_in_the_admin(staff_client, pending):
    assert staff_client.get(admin_url(Reservation, "add")).status_code == 403
    assert staff_client.get(admin_url(Reservation, "delete", pending.pk)).status_code == 403
    assert staff_client.get(admin_url(ReservationEvent, "add")).status_code == 403
    event = pending.events.get()
    assert staff_client.get(admin_url(ReservationEvent, "delete", event.pk)).status_code == 403
    assert staff_client.get(admin_url(IdempotencyKey, "add")).status_code == 403


def test_api_tokens_show_their_prefix_never_their_hash(staff_client, data):
    token = ApiToken.objects.get()
    for url in (admin_url(ApiToken, "changelist"), admin_url(ApiToken, "change", token.pk)):
        content = staff_client.get(url).content.decode()
        assert token.prefix in content
        assert token.key_hash not in content
    assert staff_client.get(admin_url(ApiToken, "add")).status_code == 403


# --- search -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "query", "expected"),
    [
        (Lot, "paris", 1),
        (Lot, "nowhere", 0),
        (Spot, "C-002", 1),
        (User, "driver", 1),
        (User, "nobody@", 0),
        (Vehicle, "AB123", 1),
    ],
)
def test_search_finds_what_it_should(staff_client, data, model, query, expected):
    response = staff_client.get(admin_url(model, "changelist"), {"q": query})
    assert response.status_code == 200
    assert response.context["cl"].result_count == expected


def test_reservation_search_by_code_plate_and_email(staff_client, lot, driver, pending):
    other_driver = UserFactory(email="someone.else@example.com")
    other = book(other_driver, lot, vehicle_plate="ZZ-999-ZZ")
    url = admin_url(Reservation, "changelist")

    for query, found in (
        (pending.code, pending),
        (pending.code.lower(), pending),
        ("AB123CD", pending),
        (driver.email, pending),
        ("someone.else", other),
        ("ZZ999", other),
    ):
        results = list(staff_client.get(url, {"q": query}).context["cl"].result_list)
        assert results == [found], query
    assert list(staff_client.get(url, {"q": "NOPE-NOPE"}).context["cl"].result_list) == []


def test_reservation_filters(staff_client, lot, pending):
    url = admin_url(Reservation, "changelist")
    for params, count in (
        ({"status__exact": "pending_payment"}, 1),
        ({"status__exact": "cancelled"}, 0),
        ({"lot__id__exact": lot.pk}, 1),
        ({"vehicle_type__exact": "van"}, 0),
    ):
        response = staff_client.get(url, params)
        assert response.status_code == 200
        assert response.context["cl"].result_count == count, params


# --- the cancel action ------------------------------------------------------------------


def cancel(client, *reservations):
    return client.post(
        admin_url(Reservation, "changelist"),
        {"action": "cancel_reservations", "_selected_action": [r.pk for r in reservations]},
        follow=True,
    )


def messages_of(response) -> list[tuple[str, str]]:
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def test_cancel_action_cancels_through_the_service_as_staff(staff_client, superuser, pending):
    version = Lot.objects.get(pk=pending.lot_id).availability_version

    response = cancel(staff_client, pending)

    assert response.status_code == 200
    pending.refresh_from_db()
    assert pending.status == Status.CANCELLED
    event = pending.events.order_by("at", "id").last()
    assert (event.from_status, event.to_status) == ("pending_payment", "cancelled")
    assert event.actor == "staff"
    assert event.actor_user == superuser
    assert Lot.objects.get(pk=pending.lot_id).availability_version > version
    assert ("success", f"{pending.code}: cancelled.") in messages_of(response)


def test_cancel_action_refuses_an_illegal_cancel_without_a_500(staff_client, lot, driver):
    done = complete(book(driver, lot))
    events = done.events.count()

    response = cancel(staff_client, done)

    assert response.status_code == 200
    done.refresh_from_db()
    assert done.status == Status.COMPLETED
    assert done.events.count() == events
    [(level, text)] = messages_of(response)
    assert level == "error"
    assert text.startswith(f"{done.code}: not cancelled.")
    assert "completed cannot become cancelled" in text


def test_cancel_action_reports_each_reservation(staff_client, lot, driver, pending):
    done = complete(book(driver, lot, hours_ahead=5))
    confirmed = book(driver, lot, hours_ahead=8)
    reservation_confirm(reservation_id=confirmed.pk)
    already = book(driver, lot, hours_ahead=11)
    cancel(staff_client, already)

    response = cancel(staff_client, pending, done, confirmed, already)

    statuses = dict(
        Reservation.objects.filter(
            pk__in=[pending.pk, done.pk, confirmed.pk, already.pk]
        ).values_list("pk", "status")
    )
    assert statuses == {
        pending.pk: "cancelled",
        done.pk: "completed",
        confirmed.pk: "cancelled",
        already.pk: "cancelled",
    }
    found = messages_of(response)
    assert ("success", f"{pending.code}: cancelled.") in found
    assert ("success", f"{confirmed.code}: cancelled.") in found
    assert ("warning", f"{already.code}: was already cancelled.") in found
    assert any(level == "error" and text.startswith(done.code) for level, text in found)
    assert already.events.filter(to_status="cancelled").count() == 1


# --- writes staff do make in the admin --------------------------------------------------


def test_adding_a_user_with_a_password_in_the_admin(staff_client):
    response = staff_client.post(
        admin_url(User, "add"),
        {
            "email": "New.Staff@Example.com",
            "full_name": "New Staff",
            "usable_password": "true",
            "password1": "a long enough pass phrase",
            "password2": "a long enough pass phrase",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(email="new.staff@example.com")
    assert user.check_password("a long enough pass phrase")

    again = staff_client.post(
        admin_url(User, "add"),
        {
            "email": "NEW.staff@example.com",
            "usable_password": "true",
            "password1": "a long enough pass phrase",
            "password2": "a long enough pass phrase",
        },
    )
    assert again.status_code == 200
    assert "email" in again.context["adminform"].form.errors
    assert User.objects.filter(email__iexact="new.staff@example.com").count() == 1


def test_adding_a_lot_in_the_admin_accepts_an_upper_case_currency(staff_client):
    response = staff_client.post(
        admin_url(Lot, "add"),
        {
            "name": "Berlin Mitte",
            "slug": "berlin-mitte",
            "is_active": "on",
            "address": "Friedrichstraße 1",
            "city": "Berlin",
            "timezone": "Europe/Berlin",
            "currency": "EUR",
            "rates-TOTAL_FORMS": "1",
            "rates-INITIAL_FORMS": "0",
            "rates-0-vehicle_type": "car",
            "rates-0-hourly_amount": "300",
            "rates-0-daily_max_amount": "2500",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    lot = Lot.objects.get(slug="berlin-mitte")
    assert lot.currency == "eur"
    assert lot.rates.get().daily_max_amount == 2500


def test_a_rate_below_its_hourly_amount_is_a_form_error_not_a_500(staff_client, lot):
    response = staff_client.post(
        admin_url(Rate, "add"),
        {"lot": lot.pk, "vehicle_type": "van", "hourly_amount": "500", "daily_max_amount": "100"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not Rate.objects.filter(lot=lot, vehicle_type="van").exists()


def test_switching_a_spot_off_in_the_admin_invalidates_availability(staff_client, lot):
    spot = lot.spots.first()
    version = lot.availability_version
    response = staff_client.post(
        admin_url(Spot, "change", spot.pk),
        {"lot": lot.pk, "label": spot.label, "vehicle_type": "car"},  # is_active unticked
    )
    assert response.status_code == 302
    spot.refresh_from_db()
    assert not spot.is_active
    assert Lot.objects.get(pk=lot.pk).availability_version > version


def test_a_vehicle_typed_differently_is_still_a_duplicate_not_a_500(staff_client, data):
    driver = data["driver"]
    response = staff_client.post(
        admin_url(Vehicle, "add"),
        {"owner": driver.pk, "plate": "ab-123 cd", "vehicle_type": "car", "nickname": ""},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert driver.vehicles.count() == 1

    response = staff_client.post(
        admin_url(Vehicle, "add"),
        {"owner": driver.pk, "plate": "xy 987", "vehicle_type": "van", "nickname": "Van"},
    )
    assert response.status_code == 302
    assert driver.vehicles.filter(plate="XY987").exists()
