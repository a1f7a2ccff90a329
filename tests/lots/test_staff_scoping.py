"""Lot staff see and change only their lots in the admin; superusers see everything.

Staff of lot A get a 404 for lot B's objects by URL, cannot pick lot B in
foreign-key fields, see only their rows in lists, filters, searches and
autocompletes, and cannot touch lot B's rows through actions.
"""

from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lots.models import GateDevice, Lot, LotStaff, Rate, RateRule, Spot
from lots.services import gate_create, rate_rule_save, rate_set, spots_add
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.models import User
from parking.services import group_ensure
from payments.models import Payment
from reservations.models import Closure, Reservation, ReservationEvent, Status
from reservations.services import payment_reference, reservation_create
from reservations.services.closures import closure_create
from tests.factories import LotFactory, UserFactory

pytestmark = pytest.mark.django_db


def admin_url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def make_lot(slug: str, tz: str, currency: str) -> Lot:
    lot = LotFactory(slug=slug, name=slug.title(), timezone=tz, currency=currency)
    rate_set(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2000)
    spots_add(lot=lot, vehicle_type="car", count=3, prefix="C")
    return lot


def book(lot: Lot, driver: User, plate: str) -> Reservation:
    start = timezone.now() + timedelta(hours=3)
    reservation = reservation_create(
        user=driver,
        lot_id=lot.slug,
        vehicle_type="car",
        start=start,
        end=start + timedelta(hours=2),
        vehicle_plate=plate,
    ).reservation
    Payment.objects.create(
        reference=payment_reference(reservation),
        user=driver,
        amount=reservation.price_amount,
        currency=reservation.currency,
    )
    return reservation


@pytest.fixture
def world(db):
    """Lot A (Paris) and lot B (Tokyo), each with spots, a rate, a gate, a
    reservation with its payment; a staff member of A; a superuser."""
    lot_a = make_lot("paris", "Europe/Paris", "eur")
    lot_b = make_lot("tokyo", "Asia/Tokyo", "jpy")
    driver = UserFactory(email="driver@example.com")
    gate_a, _ = gate_create(lot=lot_a, name="North")
    gate_b, _ = gate_create(lot=lot_b, name="North")
    group = group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS)
    staff = UserFactory(email="staff.a@example.com", is_staff=True)
    staff.groups.add(group)
    LotStaff.objects.create(lot=lot_a, user=staff)
    boss = User.objects.create_superuser(email="boss@example.com", password="x-secret-pw")
    for lot in (lot_a, lot_b):
        rate_rule_save(
            rule=RateRule(
                lot=lot,
                name=f"{lot.slug} fair",
                kind="event",
                starts_at=timezone.now() + timedelta(days=30),
                ends_at=timezone.now() + timedelta(days=31),
                hourly_amount=900,
            )
        )
    for lot in (lot_a, lot_b):  # a spot of each closed in three weeks
        closure_create(
            lot_id=lot.pk,
            starts_at=timezone.now() + timedelta(days=21),
            ends_at=timezone.now() + timedelta(days=22),
            reason="Line painting",
            spot_ids=[lot.spots.get(label="C-003").pk],
        )
    return {
        "a": lot_a,
        "b": lot_b,
        "gate_a": gate_a,
        "gate_b": gate_b,
        "res_a": book(lot_a, driver, "AA111"),
        "res_b": book(lot_b, driver, "BB222"),
        "staff": staff,
        "group": group,
        "boss": boss,
    }


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_a(world) -> Client:
    return client_for(world["staff"])


@pytest.fixture
def boss(world) -> Client:
    return client_for(world["boss"])


def rows_of(world, lot_key: str) -> dict:
    """One object of each scoped model that belongs to the lot."""
    lot = world[lot_key]
    reservation = world[f"res_{lot_key}"]
    return {
        Lot: lot,
        Spot: lot.spots.get(label="C-001"),
        Rate: lot.rates.get(),
        RateRule: lot.rate_rules.get(),
        GateDevice: world[f"gate_{lot_key}"],
        Reservation: reservation,
        ReservationEvent: reservation.events.get(),
        Payment: Payment.objects.get(reference=payment_reference(reservation)),
        Closure: Closure.objects.get(lot=lot),
    }


SCOPED = [Lot, Spot, Rate, RateRule, GateDevice, Reservation, ReservationEvent, Payment, Closure]


# --- lists ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m.__name__)
def test_staff_lists_show_only_their_lots_rows(world, staff_a, model):
    response = staff_a.get(admin_url(model, "changelist"), {"all": ""})
    assert response.status_code == 200
    shown = set(response.context["cl"].result_list)
    assert rows_of(world, "a")[model] in shown
    assert rows_of(world, "b")[model] not in shown
    assert rows_of(world, "b")[model] not in set(response.context["cl"].queryset)


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m.__name__)
def test_superuser_lists_show_every_lot(world, boss, model):
    shown = set(boss.get(admin_url(model, "changelist")).context["cl"].result_list)
    assert {rows_of(world, "a")[model], rows_of(world, "b")[model]} <= shown


def test_the_lot_filter_offers_only_their_lots(world, staff_a, boss):
    # With two lots of their own, staff get a lot filter (with one, Django hides it).
    lot_c = make_lot("lyon", "Europe/Paris", "eur")
    gate_create(lot=lot_c, name="North")
    book(lot_c, world["res_a"].user, "CC333")
    LotStaff.objects.create(lot=lot_c, user=world["staff"])
    for model in (Spot, Rate, GateDevice, Reservation):
        content = staff_a.get(admin_url(model, "changelist")).content.decode()
        assert f"lot__id__exact={world['a'].pk}" in content, model
        assert f"lot__id__exact={lot_c.pk}" in content, model
        assert f"lot__id__exact={world['b'].pk}" not in content, model
        assert ">Tokyo<" not in content, model
    content = boss.get(admin_url(Reservation, "changelist")).content.decode()
    assert f"lot__id__exact={world['b'].pk}" in content
    # Asking for lot B's rows by the filter's parameter finds nothing.
    response = staff_a.get(admin_url(Spot, "changelist"), {"lot__id__exact": world["b"].pk})
    assert response.context["cl"].result_count == 0


def test_searching_finds_nothing_of_another_lot(world, staff_a, boss):
    code_b = world["res_b"].code
    for term in (code_b, "BB222", "driver@example.com"):
        found = staff_a.get(admin_url(Reservation, "changelist"), {"q": term}).context["cl"]
        assert world["res_b"] not in found.result_list, term
    found = boss.get(admin_url(Reservation, "changelist"), {"q": code_b}).context["cl"]
    assert list(found.result_list) == [world["res_b"]]
    events = staff_a.get(admin_url(ReservationEvent, "changelist"), {"q": code_b})
    assert events.context["cl"].result_count == 0


def test_a_staff_member_with_no_lot_sees_nothing(world):
    loner = UserFactory(email="loner@example.com", is_staff=True)
    loner.groups.add(world["group"])
    client = client_for(loner)
    for model in SCOPED:
        response = client.get(admin_url(model, "changelist"))
        assert response.status_code == 200
        assert response.context["cl"].result_count == 0, model


def test_an_inactive_superuser_gets_nothing(world):
    world["boss"].is_active = False
    world["boss"].save()
    client = client_for(world["boss"])
    assert client.get(admin_url(Lot, "changelist")).status_code == 302  # to the login page


# --- by URL -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", SCOPED, ids=lambda m: m.__name__)
def test_another_lots_objects_are_not_found_by_url(world, staff_a, boss, model):
    mine, theirs = rows_of(world, "a")[model], rows_of(world, "b")[model]
    assert staff_a.get(admin_url(model, "change", mine.pk)).status_code == 200
    for view in ("change", "history", "delete"):
        response = staff_a.get(admin_url(model, view, theirs.pk))
        assert response.status_code == 404, view
        assert str(theirs) not in response.content.decode()
    assert boss.get(admin_url(model, "change", theirs.pk)).status_code == 200


def test_a_missing_object_and_another_lots_get_the_same_answer(world, staff_a):
    assert staff_a.get(admin_url(Spot, "change", 999_999)).status_code == 404


def test_posting_to_another_lots_objects_changes_nothing(world, staff_a):
    lot_b, spot_b, rate_b = (rows_of(world, "b")[m] for m in (Lot, Spot, Rate))
    response = staff_a.post(
        admin_url(Spot, "change", spot_b.pk), {"label": "HACKED", "lot": world["a"].pk}
    )
    assert response.status_code == 404
    response = staff_a.post(
        admin_url(Rate, "change", rate_b.pk),
        {"lot": lot_b.pk, "vehicle_type": "car", "hourly_amount": "1", "daily_max_amount": "1"},
    )
    assert response.status_code == 404
    response = staff_a.post(admin_url(Lot, "change", lot_b.pk), {"name": "Mine now"})
    assert response.status_code == 404
    spot_b.refresh_from_db()
    rate_b.refresh_from_db()
    lot_b.refresh_from_db()
    assert (spot_b.label, rate_b.hourly_amount, lot_b.name) == ("C-001", 300, "Tokyo")


def test_another_lots_custom_views_are_not_found(world, staff_a):
    lot_b = world["b"]
    for url in (
        reverse("admin:lots_lot_occupancy", args=[lot_b.pk]),
        reverse("admin:lots_lot_add_spots", args=[lot_b.pk]),
    ):
        assert staff_a.get(url).status_code == 404, url
    response = staff_a.post(
        reverse("admin:lots_lot_add_spots", args=[lot_b.pk]),
        {"vehicle_type": "car", "count": "5", "prefix": "X"},
    )
    assert response.status_code == 404
    assert (
        staff_a.post(reverse("admin:lots_gatedevice_revoke", args=[world["gate_b"].pk])).status_code
        == 404
    )
    assert lot_b.spots.count() == 3
    world["gate_b"].refresh_from_db()
    assert world["gate_b"].is_active


# --- foreign keys -----------------------------------------------------------------------


@pytest.mark.parametrize("model", [Spot, Rate, RateRule, GateDevice], ids=lambda m: m.__name__)
def test_the_lot_field_offers_only_their_lots(world, staff_a, model):
    response = staff_a.get(admin_url(model, "add"))
    assert response.status_code == 200
    form = response.context.get("adminform")
    field = form.form.fields["lot"] if form else response.context["form"].fields["lot"]
    assert list(field.queryset) == [world["a"]]


def test_another_lot_cannot_be_picked_in_a_form(world, staff_a):
    lot_b = world["b"]
    spot = staff_a.post(
        admin_url(Spot, "add"), {"lot": lot_b.pk, "label": "X-001", "vehicle_type": "car"}
    )
    assert spot.status_code == 200
    assert "lot" in spot.context["adminform"].form.errors
    rate = staff_a.post(
        admin_url(Rate, "add"),
        {"lot": lot_b.pk, "vehicle_type": "van", "hourly_amount": "9", "daily_max_amount": "99"},
    )
    assert rate.status_code == 200
    assert "lot" in rate.context["adminform"].form.errors
    gate = staff_a.post(admin_url(GateDevice, "add"), {"lot": lot_b.pk, "name": "Back door"})
    assert gate.status_code == 200
    assert "lot" in gate.context["form"].errors
    assert not lot_b.spots.filter(label="X-001").exists()
    assert not lot_b.rates.filter(vehicle_type="van").exists()
    assert not lot_b.gates.filter(name="Back door").exists()

    # Their own lot works.
    ok = staff_a.post(
        admin_url(Spot, "add"), {"lot": world["a"].pk, "label": "X-001", "vehicle_type": "car"}
    )
    assert ok.status_code == 302
    assert world["a"].spots.filter(label="X-001").exists()


def test_the_lot_autocomplete_offers_only_their_lots(world, staff_a, boss):
    params = {"app_label": "lots", "model_name": "spot", "field_name": "lot", "term": ""}
    found = staff_a.get(reverse("admin:autocomplete"), params).json()["results"]
    assert [row["id"] for row in found] == [str(world["a"].pk)]
    found = boss.get(reverse("admin:autocomplete"), params).json()["results"]
    assert {row["id"] for row in found} == {str(world["a"].pk), str(world["b"].pk)}


# --- actions and lots -------------------------------------------------------------------


def test_actions_on_another_lots_rows_do_nothing(world, staff_a):
    res_b, gate_b = world["res_b"], world["gate_b"]
    spot_b = rows_of(world, "b")[Spot]
    staff_a.post(
        admin_url(Reservation, "changelist"),
        {"action": "cancel_reservations", "_selected_action": [res_b.pk]},
    )
    staff_a.post(
        admin_url(GateDevice, "changelist"),
        {"action": "revoke_gates", "_selected_action": [gate_b.pk]},
    )
    staff_a.post(
        admin_url(Spot, "changelist"),
        {"action": "take_out_if_free", "_selected_action": [spot_b.pk]},
    )
    res_b.refresh_from_db()
    gate_b.refresh_from_db()
    spot_b.refresh_from_db()
    assert res_b.status == Status.PENDING_PAYMENT
    assert gate_b.is_active
    assert spot_b.is_active


def test_staff_cannot_open_lots_or_change_a_lots_id_and_currency(world, staff_a, boss):
    assert staff_a.get(admin_url(Lot, "add")).status_code == 403
    assert boss.get(admin_url(Lot, "add")).status_code == 200
    lot = world["a"]
    response = staff_a.post(
        admin_url(Lot, "change", lot.pk),
        {
            "name": "Paris Centre",
            "slug": "stolen",
            "currency": "usd",
            "address": lot.address,
            "city": lot.city,
            "timezone": lot.timezone,
            "is_active": "on",
            "rates-TOTAL_FORMS": "0",
            "rates-INITIAL_FORMS": "0",
            "opening_hours-TOTAL_FORMS": "0",
            "opening_hours-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    lot.refresh_from_db()
    assert (lot.name, lot.slug, lot.currency) == ("Paris Centre", "paris", "eur")


def test_staff_do_not_see_or_edit_who_staffs_a_lot(world, staff_a, boss):
    url = admin_url(Lot, "change", world["a"].pk)
    assert "Staff of this lot" not in staff_a.get(url).content.decode()
    assert "Staff of this lot" in boss.get(url).content.decode()
    assert "staff.a@example.com" in boss.get(url).content.decode()


def test_the_admin_index_lists_what_staff_run(world, staff_a):
    content = staff_a.get(reverse("admin:index")).content.decode()
    for name in ("Lots", "Spots", "Rates", "Gate devices", "Reservations", "Payments"):
        assert name in content, name
    assert "Users" not in content


def test_every_scoped_model_admin_is_scoped(world):
    """No lot-owned model is registered without the scoping mixin; payments, which
    know nothing of lots, are scoped by the hook reservations gives them."""
    from lots.admin import LotScopedAdminMixin
    from reservations.admin import staff_payments

    for model in SCOPED:
        model_admin = admin.site.get_model_admin(model)
        if model is Payment:
            assert type(model_admin).scope_hook is staff_payments
        else:
            assert isinstance(model_admin, LotScopedAdminMixin), model
