"""The staff admin: every model's pages work, searches find, and the cancel action
goes through the reservation service and reports what happened."""

from datetime import time, timedelta

import pytest
from django.contrib import admin
from django.contrib.admin import FieldListFilter
from django.contrib.admin.models import ADDITION, LogEntry
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from config.admin_input import AdminInputMixin
from lots.models import GateDevice, Lot, LotStaff, Rate, RateRule, Spot
from lots.services import gate_create, hash_key, rate_rule_save, rate_set, spots_add
from lots.webhooks.services import webhook_endpoint_create, webhook_test_send
from parking.models import ApiToken, User, Vehicle
from parking.services import api_token_create, vehicle_add
from payments.models import Payment, StripeCustomer, StripeEvent
from reservations.models import IdempotencyKey, Reservation, ReservationEvent, Status
from reservations.services import (
    payment_reference,
    reservation_arrive,
    reservation_complete,
    reservation_confirm,
    reservation_create,
    reservation_depart,
)
from reservations.services.closures import closure_create
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
def pending(lot, driver):
    return book(driver, lot, vehicle_plate="AB-123-CD", idempotency_key="key-1")


@pytest.fixture
def data(lot, driver, pending):
    """One row of every model the admin shows."""
    SpotFactory(lot=lot, label="M-001", vehicle_type="motorcycle")
    vehicle_add(owner=driver, plate="ab 123 cd", vehicle_type="car", nickname="Blue Clio")
    api_token_create(user=driver)
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
    gate_create(lot=lot, name="North entrance")
    attendant = UserFactory(email="attendant@example.com", is_staff=True)
    LotStaff.objects.create(lot=lot, user=attendant)
    TOTPDevice.objects.create(user=attendant, name="Authenticator app", confirmed=True)
    endpoint = webhook_endpoint_create(
        lot=lot, url="https://partner.example/hooks", event_types=["reservation.created"]
    )
    webhook_test_send(endpoint_id=endpoint.pk)  # a delivery in the log
    for rule in (
        RateRule(
            lot=lot,
            name="Fair",
            kind="event",
            hourly_amount=900,
            starts_at=pending.start,
            ends_at=pending.end,
        ),
        RateRule(
            lot=lot,
            name="weekday peak",
            weekdays=0b11111,
            start_time=time(8),
            end_time=time(0),
            hourly_amount=400,
        ),
    ):
        rate_rule_save(rule=rule)
    closure_create(  # a motorcycle spot closed next month: no booking in its way
        lot_id=lot.pk,
        starts_at=timezone.now() + timedelta(days=30),
        ends_at=timezone.now() + timedelta(days=31),
        reason="Repainting",
        spot_ids=[lot.spots.get(label="M-001").pk],
    )
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


def test_reservation_page_says_what_the_driver_asked_of_the_spot(staff_client, lot, driver):
    SpotFactory(lot=lot, label="E-1", has_ev_charging=True, is_covered=True)
    plain = book(driver, lot)
    ev = book(UserFactory(), lot, features=["covered", "ev_charging"], vehicle_height_cm=190)

    shown = staff_client.get(admin_url(Reservation, "change", ev.pk)).content.decode()
    assert "Covered and EV charging, for a vehicle 190 cm tall" in shown
    assert (
        "Asked of the spot"
        in staff_client.get(admin_url(Reservation, "change", plain.pk)).content.decode()
    )


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
        ("Someone.Else@", other),
        ("ZZ999", other),
    ):
        results = list(staff_client.get(url, {"q": query}).context["cl"].result_list)
        assert results == [found], query
    assert list(staff_client.get(url, {"q": "NOPE-NOPE"}).context["cl"].result_list) == []


def test_payment_search_by_code_reference_ids_and_email(staff_client, data, pending, driver):
    url = admin_url(Payment, "changelist")
    paid = Payment.objects.get()

    for query in (
        pending.code,
        pending.code.lower().replace("-", ""),
        f"reservation:{pending.code}",
        "pi_test",
        "cus_test",
        driver.email[:6],
    ):
        results = list(staff_client.get(url, {"q": query}).context["cl"].result_list)
        assert results == [paid], query
    for query in ("pi_tes", "NOPE-NOPE", "nobody@"):
        assert list(staff_client.get(url, {"q": query}).context["cl"].result_list) == [], query


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


# --- input the database cannot take --------------------------------------------------------


def changelist_parameters(model_admin, request) -> set[str]:
    """Every query parameter a changelist reads: each filter's (whether or not it
    has choices to show today), the date drill-down's, the search, paging, ordering."""
    names = {"q", "o", "p", "all"}
    for item in model_admin.get_list_filter(request):
        if isinstance(item, type):  # a SimpleListFilter
            names.add(item.parameter_name)
            continue
        path, make = item if isinstance(item, tuple) else (item, FieldListFilter.create)
        field = get_fields_from_path(model_admin.model, path)[-1]
        spec = make(field, request, {}, model_admin.model, model_admin, field_path=path)
        names.update(spec.expected_parameters())
    if model_admin.date_hierarchy:
        names.update(f"{model_admin.date_hierarchy}__{part}" for part in ("year", "month", "day"))
    return names


def test_a_nul_byte_in_any_changelist_parameter_is_the_admins_invalid_filter_page(
    staff_client, data
):
    """PostgreSQL refuses NUL in text: a filter holding one failed once its query
    ran (500). Each of our lists answers as Django does to other bad lookups."""
    checked = set()
    for model, model_admin in admin.site._registry.items():
        url = admin_url(model, "changelist")
        request = staff_client.get(url).wsgi_request
        # Django's own (Group) and other packages' are held only to no 5xx.
        ours = model._meta.app_label in {"lots", "reservations", "payments", "parking"}
        assert isinstance(model_admin, AdminInputMixin) or not ours, model
        for name in [*sorted(changelist_parameters(model_admin, request)), "nul\x00"]:
            for value in ("\x00", "a\x00b"):
                response = staff_client.get(url, {name: value})

                assert response.status_code < 500, (model, name)
                if ours:
                    assert response.status_code == 302, (model, name, response.status_code)
                    assert response["Location"] == f"{url}?e=1", (model, name)
                checked.add((model, name))

    assert {(Reservation, n) for n in ("q", "status__exact", "lot__id__exact")} <= checked
    assert {(Reservation, n) for n in ("starting", "attention")} <= checked
    assert {(Lot, "city"), (Rate, "lot__currency"), (Payment, "currency")} <= checked
    assert {(StripeEvent, "type"), (ApiToken, "created_at__day"), (Group, "q")} <= checked


@pytest.mark.parametrize(("model", "field"), [(Spot, "lot"), (Rate, "lot"), (Vehicle, "owner")])
def test_an_autocomplete_term_with_a_nul_byte_finds_nothing(staff_client, data, model, field):
    response = staff_client.get(
        reverse("admin:autocomplete"),
        {
            "term": "paris\x00",
            "app_label": model._meta.app_label,
            "model_name": model._meta.model_name,
            "field_name": field,
        },
    )

    assert response.status_code == 200
    assert response.json()["results"] == []


@pytest.mark.parametrize("selected", [["\x00"], ["x"], ["1", "1e3"], [""]])
def test_an_action_on_rows_that_are_no_row_ids_is_refused_with_a_message(
    staff_client, pending, selected
):
    url = admin_url(Reservation, "changelist")
    response = staff_client.post(
        url, {"action": "cancel_reservations", "_selected_action": selected}
    )

    assert response.status_code == 302
    assert response["Location"] == url
    assert messages_of(response) == [("error", "Those rows are not in this list.")]
    pending.refresh_from_db()
    assert pending.status == Status.PENDING_PAYMENT


def test_relabelling_a_spot_to_a_label_its_lot_has_is_a_form_error_on_the_label(staff_client, lot):
    """The lot is read-only on a spot's page, so Django's own check of (lot,
    label) left it out and the database refused the save (500)."""
    spot = lot.spots.get(label="C-001")
    other_lot = LotFactory()
    SpotFactory(lot=other_lot, label="C-009")

    taken = staff_client.post(admin_url(Spot, "change", spot.pk), {"label": "C-002"})

    assert taken.status_code == 200
    errors = taken.context["adminform"].form.errors
    assert list(errors) == ["label"]
    assert errors["label"] == [f"{lot} already has a spot labelled C-002."]
    spot.refresh_from_db()
    assert spot.label == "C-001"
    # Another lot's labels are no concern of this one.
    moved = staff_client.post(admin_url(Spot, "change", spot.pk), {"label": "C-009"})
    assert moved.status_code == 302
    spot.refresh_from_db()
    assert spot.label == "C-009"


def test_adding_a_spot_with_a_label_its_lot_has_is_a_form_error_on_the_label(staff_client, lot):
    response = staff_client.post(
        admin_url(Spot, "add"),
        {"lot": lot.pk, "label": "C-001", "vehicle_type": "car", "is_active": "on"},
    )

    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["label"]
    assert lot.spots.filter(label="C-001").count() == 1


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
    assert (
        "success",
        f"{pending.code}: cancelled; nothing charged. No payment was made.",
    ) in messages_of(response)
    entry = LogEntry.objects.get(content_type__model="reservation", object_id=str(pending.pk))
    assert entry.user == superuser
    assert entry.get_change_message().startswith("cancelled; nothing charged")


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
    assert ("success", pending.code) in [(level, text[:9]) for level, text in found]
    assert ("success", confirmed.code) in [(level, text[:9]) for level, text in found]
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
    attendant = UserFactory(email="attendant@example.com", is_staff=True)
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
            "opening_hours-TOTAL_FORMS": "0",
            "opening_hours-INITIAL_FORMS": "0",
            # A superuser names the lot's staff on the same page.
            "staff_memberships-TOTAL_FORMS": "1",
            "staff_memberships-INITIAL_FORMS": "0",
            "staff_memberships-0-user": attendant.pk,
            "staff_memberships-0-role": "manager",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    lot = Lot.objects.get(slug="berlin-mitte")
    assert lot.currency == "eur"
    assert lot.rates.get().daily_max_amount == 2500
    assert list(lot.staff_memberships.values_list("user__email", "role")) == [
        ("attendant@example.com", "manager")
    ]


def test_a_rate_below_its_hourly_amount_is_a_form_error_not_a_500(staff_client, lot):
    response = staff_client.post(
        admin_url(Rate, "add"),
        {"lot": lot.pk, "vehicle_type": "van", "hourly_amount": "500", "daily_max_amount": "100"},
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not Rate.objects.filter(lot=lot, vehicle_type="van").exists()


def test_a_spot_is_relabelled_on_its_page_but_not_switched_off_or_retyped(staff_client, lot):
    """Taking a spot out of service must deal with its reservations, so it is an
    action (tests/reservations/test_spot_out_of_service.py), not a tick box; its
    lot and type are fixed for the same reason."""
    spot = lot.spots.get(label="C-001")
    other = LotFactory()
    response = staff_client.post(
        admin_url(Spot, "change", spot.pk),
        {"lot": other.pk, "label": "C-101", "vehicle_type": "van"},  # is_active unticked
    )
    assert response.status_code == 302
    spot.refresh_from_db()
    assert (spot.label, spot.lot_id, spot.vehicle_type, spot.is_active) == (
        "C-101",
        lot.pk,
        "car",
        True,
    )
    content = staff_client.get(admin_url(Spot, "change", spot.pk)).content.decode()
    assert 'name="label"' in content
    assert 'name="is_active"' not in content
    assert 'name="vehicle_type"' not in content


def test_putting_spots_back_in_service_invalidates_availability(staff_client, superuser, lot):
    spot = lot.spots.get(label="C-001")
    Spot.objects.filter(pk=spot.pk).update(is_active=False)
    version = Lot.objects.get(pk=lot.pk).availability_version

    response = staff_client.post(
        admin_url(Spot, "changelist"),
        {"action": "return_to_service", "_selected_action": [spot.pk]},
        follow=True,
    )

    spot.refresh_from_db()
    assert spot.is_active
    assert Lot.objects.get(pk=lot.pk).availability_version > version
    assert ("success", "Back in service: C-001.") in messages_of(response)
    entry = LogEntry.objects.get(object_id=str(spot.pk), content_type__model="spot")
    assert (entry.user, entry.get_change_message()) == (superuser, "Put back in service.")


# --- adding spots -----------------------------------------------------------------------


def test_add_spots_form_numbers_on_from_the_highest_label(staff_client, superuser, lot):
    url = reverse("admin:lots_lot_add_spots", args=[lot.pk])
    assert url in staff_client.get(admin_url(Lot, "change", lot.pk)).content.decode()
    assert staff_client.get(url).status_code == 200
    version = Lot.objects.get(pk=lot.pk).availability_version

    response = staff_client.post(
        url, {"vehicle_type": "car", "count": "4", "prefix": "c"}, follow=True
    )

    assert response.redirect_chain[-1][0] == admin_url(Lot, "change", lot.pk)
    labels = sorted(lot.spots.filter(vehicle_type="car").values_list("label", flat=True))
    assert labels == ["C-001", "C-002", "C-003", "C-004", "C-005", "C-006", "C-007"]
    assert ("success", "Added 4 car spots: C-004 to C-007.") in messages_of(response)
    assert Lot.objects.get(pk=lot.pk).availability_version > version
    # The admin log has it, on the lot and on each new spot, under the staff member's name.
    lot_entry = LogEntry.objects.get(content_type__model="lot", object_id=str(lot.pk))
    assert lot_entry.user == superuser
    assert lot_entry.get_change_message() == "Added 4 car spots: C-004 to C-007."
    assert LogEntry.objects.filter(content_type__model="spot", action_flag=ADDITION).count() == 4


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"vehicle_type": "car", "count": "0", "prefix": "C"}, "count"),
        ({"vehicle_type": "car", "count": "5000", "prefix": "C"}, "count"),
        ({"vehicle_type": "car", "count": "2", "prefix": "C-"}, "prefix"),
        ({"vehicle_type": "boat", "count": "2", "prefix": "B"}, "vehicle_type"),
    ],
)
def test_add_spots_form_refuses_bad_input_without_adding(staff_client, lot, data, field):
    response = staff_client.post(reverse("admin:lots_lot_add_spots", args=[lot.pk]), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert lot.spots.count() == 3


def test_add_spots_form_gives_the_whole_batch_its_features(staff_client, lot):
    url = reverse("admin:lots_lot_add_spots", args=[lot.pk])
    page = staff_client.get(url).content.decode()
    for name in ("has_ev_charging", "is_accessible", "is_covered", "max_height_cm"):
        assert f'name="{name}"' in page, name

    staff_client.post(
        url,
        {
            "vehicle_type": "car",
            "count": "2",
            "prefix": "E",
            "has_ev_charging": "on",
            "is_covered": "on",
            "max_height_cm": "210",
        },
    )

    added = lot.spots.filter(label__startswith="E-").order_by("label")
    assert [
        (s.label, s.has_ev_charging, s.is_accessible, s.is_covered, s.max_height_cm) for s in added
    ] == [("E-001", True, False, True, 210), ("E-002", True, False, True, 210)]
    response = staff_client.post(
        url, {"vehicle_type": "car", "count": "2", "prefix": "H", "max_height_cm": "20"}
    )
    assert "max_height_cm" in response.context["form"].errors
    assert not lot.spots.filter(label__startswith="H-").exists()


def test_a_spots_features_are_edited_on_its_page_and_filter_the_list(staff_client, lot):
    spot = lot.spots.get(label="C-002")
    version = Lot.objects.get(pk=lot.pk).availability_version

    response = staff_client.post(
        admin_url(Spot, "change", spot.pk),
        {"label": "C-002", "has_ev_charging": "on", "is_accessible": "on", "max_height_cm": "195"},
    )

    assert response.status_code == 302
    spot.refresh_from_db()
    assert (spot.has_ev_charging, spot.is_accessible, spot.is_covered, spot.max_height_cm) == (
        True,
        True,
        False,
        195,
    )
    assert Lot.objects.get(pk=lot.pk).availability_version > version
    listed = staff_client.get(admin_url(Spot, "changelist") + "?has_ev_charging__exact=1")
    rows = listed.content.decode()
    assert "C-002" in rows
    assert "C-001" not in rows
    assert "EV charging, Accessible, max 195 cm" in rows


# --- gates ------------------------------------------------------------------------------


def test_adding_a_gate_shows_its_key_once_and_keeps_only_its_hash(staff_client, superuser, lot):
    response = staff_client.post(
        admin_url(GateDevice, "add"), {"lot": lot.pk, "name": "North entrance"}
    )

    assert response.status_code == 200
    gate = GateDevice.objects.get(lot=lot, name="North entrance")
    raw_key = response.context["raw_key"]
    assert raw_key in response.content.decode()
    assert hash_key(raw_key) == gate.key_hash
    assert "no-store" in response["Cache-Control"]
    entry = LogEntry.objects.get(content_type__model="gatedevice", object_id=str(gate.pk))
    assert (entry.user, entry.action_flag) == (superuser, ADDITION)
    # Never again: not in the list, not on its page, not in the log.
    for url in (admin_url(GateDevice, "changelist"), admin_url(GateDevice, "change", gate.pk)):
        content = staff_client.get(url).content.decode()
        assert gate.key_prefix in content
        assert raw_key not in content
        assert gate.key_hash not in content
    assert raw_key not in entry.change_message


def test_a_gate_name_taken_in_the_lot_is_a_form_error(staff_client, lot):
    gate_create(lot=lot, name="North entrance")
    response = staff_client.post(
        admin_url(GateDevice, "add"), {"lot": lot.pk, "name": "North entrance"}
    )
    assert response.status_code == 200
    assert "name" in response.context["form"].errors
    assert "raw_key" not in response.context
    assert GateDevice.objects.filter(lot=lot).count() == 1


def test_revoking_gates_by_action_and_by_button(staff_client, superuser, lot):
    north, _ = gate_create(lot=lot, name="North")
    south, _ = gate_create(lot=lot, name="South")

    response = staff_client.post(
        admin_url(GateDevice, "changelist"),
        {"action": "revoke_gates", "_selected_action": [north.pk]},
        follow=True,
    )
    assert ("success", "Revoked: North. Their keys no longer work.") in messages_of(response)
    page = staff_client.get(admin_url(GateDevice, "change", south.pk)).content.decode()
    assert "Revoke this gate" in page
    response = staff_client.post(reverse("admin:lots_gatedevice_revoke", args=[south.pk]))
    assert response.status_code == 302

    for gate in (north, south):
        gate.refresh_from_db()
        assert not gate.is_active
        assert gate.revoked_at is not None
        entry = LogEntry.objects.get(content_type__model="gatedevice", object_id=str(gate.pk))
        assert (entry.user, entry.get_change_message()) == (superuser, "Revoked its key.")
    page = staff_client.get(admin_url(GateDevice, "change", south.pk)).content.decode()
    assert "Revoke this gate" not in page
    assert staff_client.get(admin_url(GateDevice, "delete", south.pk)).status_code == 403


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


# --- arrivals, departures and refunds from the admin ------------------------------------


def run_action(client, action: str, *reservations, **extra):
    return client.post(
        admin_url(Reservation, "changelist"),
        {"action": action, "_selected_action": [r.pk for r in reservations], **extra},
        follow=True,
    )


def test_marking_arrived_and_left_goes_through_the_services(staff_client, superuser, lot, driver):
    reservation = book(driver, lot, hours_ahead=0.05)  # starts in 3 minutes
    reservation_confirm(reservation_id=reservation.pk)

    response = run_action(staff_client, "mark_arrived", reservation)

    reservation.refresh_from_db()
    assert reservation.status == Status.PARKED
    assert reservation.arrived_at is not None
    event = reservation.events.order_by("at", "id").last()
    assert (event.from_status, event.to_status, event.actor, event.actor_user) == (
        "confirmed",
        "parked",
        "staff",
        superuser,
    )
    [(level, text)] = messages_of(response)
    assert level == "success"
    assert text.startswith(f"{reservation.code}: marked arrived at ")
    assert text.endswith(("CET.", "CEST."))  # the lot's wall clock

    response = run_action(staff_client, "mark_left", reservation)

    reservation.refresh_from_db()
    assert reservation.status == Status.COMPLETED
    assert reservation.events.order_by("at", "id").last().actor_user == superuser
    [(level, text)] = messages_of(response)
    assert level == "success"
    assert "marked left at" in text
    assert "charged 5.00 EUR" in text
    entries = LogEntry.objects.filter(
        content_type__model="reservation", object_id=str(reservation.pk)
    ).order_by("pk")
    assert [e.get_change_message()[:13] for e in entries] == ["marked arrive", "marked left a"]
    assert {e.user for e in entries} == {superuser}


def test_illegal_transitions_are_reported_not_done(staff_client, pending):
    events = pending.events.count()

    response = run_action(staff_client, "mark_arrived", pending)
    [(level, text)] = messages_of(response)
    assert level == "error"
    assert text == (
        f"{pending.code}: not marked arrived. A reservation that is awaiting payment "
        "cannot become parked."
    )
    response = run_action(staff_client, "mark_left", pending)
    assert messages_of(response)[0][0] == "error"

    pending.refresh_from_db()
    assert pending.status == Status.PENDING_PAYMENT
    assert pending.events.count() == events
    assert not LogEntry.objects.filter(content_type__model="reservation").exists()


def test_nothing_to_refund_is_said_plainly(staff_client, pending):
    response = run_action(staff_client, "refund_part", pending)
    [(level, text)] = messages_of(response)
    assert level == "error"
    assert text.startswith(f"{pending.code}: nothing to refund")


def test_the_reservation_page_offers_the_transitions_its_state_allows(staff_client, lot, driver):
    reservation = book(driver, lot, hours_ahead=0.05)
    page = staff_client.get(admin_url(Reservation, "change", reservation.pk)).content.decode()
    assert 'value="cancel_reservations"' in page
    assert 'value="mark_arrived"' not in page  # not paid yet

    reservation_confirm(reservation_id=reservation.pk)
    page = staff_client.get(admin_url(Reservation, "change", reservation.pk)).content.decode()
    assert 'value="mark_arrived"' in page
    assert 'value="mark_left"' not in page

    # The button runs the action on this reservation and comes back to its page.
    response = run_action(staff_client, "mark_arrived", reservation, _back="change")
    assert response.redirect_chain[-1][0] == admin_url(Reservation, "change", reservation.pk)
    page = response.content.decode()
    assert 'value="mark_left"' in page
    assert "Audit trail" in page


def test_times_are_shown_in_the_lots_time_zone(staff_client, pending):
    local = pending.start.astimezone(pending.lot.tz)
    page = staff_client.get(admin_url(Reservation, "change", pending.pk)).content.decode()
    assert f"{local:%Y-%m-%d %H:%M} {local:%Z}" in page
    listing = staff_client.get(admin_url(Reservation, "changelist")).content.decode()
    assert f"{local:%Y-%m-%d %H:%M} {local:%Z}" in listing


def test_reservations_starting_today_in_the_lots_own_calendar(staff_client, lot, driver):
    soon = book(driver, lot, hours_ahead=0.1)
    later = book(driver, lot, hours_ahead=24 * 3)
    url = admin_url(Reservation, "changelist")
    found = staff_client.get(url, {"starting": "next7"}).context["cl"].result_list
    assert {soon, later} <= set(found)
    found = staff_client.get(url, {"starting": "tomorrow"}).context["cl"].result_list
    assert later not in found
    today = timezone.now().astimezone(lot.tz).date()
    found = staff_client.get(url, {"starting": "today"}).context["cl"].result_list
    assert (soon in found) == (soon.start.astimezone(lot.tz).date() == today)


# --- money: refunds and cancellations against localstripe --------------------------------


@pytest.fixture
def paid(stripe, lot, driver):
    """A confirmed reservation whose card is authorised for its price (€5)."""
    reservation = book(driver, lot, hours_ahead=1)
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())
    reservation.refresh_from_db()
    assert reservation.status == Status.CONFIRMED
    return reservation


@pytest.fixture
def settled(paid):
    """The same, after the car came and went: €5 captured."""
    reservation_arrive(reservation_id=paid.pk, at=paid.start)
    reservation_depart(reservation_id=paid.pk, at=paid.start + timedelta(hours=1))
    payment = Payment.objects.get(reference=payment_reference(paid))
    assert (payment.status, payment.amount_captured) == ("captured", 500)
    return paid


@pytest.mark.django_db(transaction=True)
def test_refunding_part_asks_the_amount_then_refunds_it(stripe, staff_client, superuser, settled):
    form = run_action(staff_client, "refund_part", settled)
    assert form.status_code == 200
    assert "Up to <strong>5.00 EUR</strong>" in form.content.decode()

    response = run_action(
        staff_client, "refund_part", settled, apply="1", amount="1.50", reason="Gate was stuck"
    )

    payment = Payment.objects.get(reference=payment_reference(settled))
    assert payment.amount_refunded == 150
    assert stripe.kept(payment.payment_intent_id) == 350  # Stripe agrees
    event = settled.events.get(data__has_key="refund")
    assert event.data == {"refund": 150, "currency": "eur", "reason": "Gate was stuck"}
    assert (event.from_status, event.to_status) == ("completed", "completed")
    assert (event.actor, event.actor_user) == ("staff", superuser)
    [(level, text)] = messages_of(response)
    assert level == "success"
    assert text.startswith(f"{settled.code}: refunded 1.50 EUR.")
    assert "refunded 1.50 EUR" in text.split(".", 2)[-1]  # the payment as it is now
    entry = LogEntry.objects.filter(content_type__model="reservation").latest("pk")
    assert (entry.user, entry.get_change_message()) == (superuser, "refunded 1.50 EUR.")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("amount", "error"),
    [("3.51", "At most 3.50 EUR"), ("0", "more than nothing"), ("1.234", "2 decimal places")],
)
def test_a_refund_beyond_what_was_kept_is_refused(stripe, staff_client, settled, amount, error):
    reference = payment_reference(settled)
    run_action(staff_client, "refund_part", settled, apply="1", amount="1.50")

    response = run_action(staff_client, "refund_part", settled, apply="1", amount=amount)

    assert response.status_code == 200
    assert error in str(response.context["form"].errors["amount"])
    assert Payment.objects.get(reference=reference).amount_refunded == 150
    assert settled.events.filter(data__has_key="refund").count() == 1


@pytest.mark.django_db(transaction=True)
def test_cancelling_before_the_start_releases_the_card_hold(stripe, staff_client, paid):
    response = cancel(staff_client, paid)

    paid.refresh_from_db()
    payment = Payment.objects.get(reference=payment_reference(paid))
    assert paid.status == Status.CANCELLED
    assert payment.status == "canceled"
    assert stripe.intent(payment.payment_intent_id)["status"] == "canceled"
    [(level, text)] = messages_of(response)
    assert level == "success"
    assert text.startswith(f"{paid.code}: cancelled; nothing charged.")
    assert "released" in text.lower()


def test_lists_cost_the_same_queries_for_one_row_or_many(staff_client, lot, driver):
    book(driver, lot, hours_ahead=1)
    urls = [admin_url(m, "changelist") for m in (Reservation, Spot, ReservationEvent, GateDevice)]
    with CaptureQueriesContext(connection) as few:
        for url in urls:
            staff_client.get(url)
    for n in range(2, 12):
        book(driver, lot, hours_ahead=3 * n)
        SpotFactory(lot=lot, label=f"C-{n + 10:03}")
        gate_create(lot=lot, name=f"Gate {n}")
    with CaptureQueriesContext(connection) as many:
        for url in urls:
            assert staff_client.get(url).context["cl"].result_count >= 10
    assert len(many) == len(few)
