"""A lot's needs-attention page: unsettled payments, cars in after their end,
bookings cancelled because their spot was taken; the actions that resolve them;
scoped to the staff member's lots by URL and by the reservation posted."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from lots.models import LotStaff
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.models import User
from parking.services import group_ensure
from reservations.attention import lot_attention, lots_attention_counts
from reservations.models import Reservation, ReservationEvent, Settlement, Status
from reservations.services import overstays_hold_spots
from tests.factories import UserFactory
from tests.lots.test_staff_scoping import make_lot
from tests.reservations.helpers import book
from tests.reservations.test_needs_attention import _parked_past_its_end

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lots():
    return make_lot("paris", "Europe/Paris", "eur"), make_lot("tokyo", "Asia/Tokyo", "jpy")


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff_of_paris(lots) -> Client:
    staff = UserFactory(email="staff@example.com", is_staff=True)
    staff.groups.add(group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS))
    LotStaff.objects.create(lot=lots[0], user=staff)
    return _client(staff)


def _unsettled(lot) -> Reservation:
    reservation = book(UserFactory(), lot, start=timezone.now() + timedelta(hours=5))
    Reservation.objects.filter(pk=reservation.pk).update(
        settlement=Settlement.ATTENTION,
        settlement_error="booking: capture refused",
        amount_due=0,
        status=Status.CANCELLED,
    )
    return reservation


def _displaced(lot) -> Reservation:
    overstayer = _parked_past_its_end(lot, UserFactory())
    start = timezone.now() + timedelta(minutes=10)
    for spot in lot.spots.exclude(pk=overstayer.spot_id):
        Reservation.objects.create(
            user=UserFactory(),
            lot=lot,
            spot=spot,
            vehicle_type="car",
            start=start - timedelta(hours=1),
            end=start + timedelta(hours=3),
            occupied_until=start + timedelta(hours=3),
            status=Status.CONFIRMED,
            price_amount=1200,
            currency=lot.currency,
        )
    unlucky = Reservation.objects.create(
        user=UserFactory(email="unlucky@example.com"),
        lot=lot,
        spot_id=overstayer.spot_id,
        vehicle_type="car",
        start=start,
        end=start + timedelta(hours=2),
        occupied_until=start + timedelta(hours=2),
        status=Status.CONFIRMED,
        price_amount=600,
        hourly_amount=300,
        daily_max_amount=2000,
        currency=lot.currency,
    )
    assert overstays_hold_spots() == 1
    return unlucky


def test_the_page_lists_each_kind_of_item_of_the_lot_only(lots, staff_of_paris):
    paris, tokyo = lots
    unsettled = _unsettled(paris)
    unlucky = _displaced(paris)
    _unsettled(tokyo)
    _parked_past_its_end(tokyo, UserFactory())

    response = staff_of_paris.get(reverse("admin:lots_lot_attention", args=[paris.pk]))

    assert response.status_code == 200
    attention = response.context["attention"]
    assert [r.code for r in attention.settlements] == [unsettled.code]
    assert len(attention.overstayers) == 1
    assert [r.code for r in attention.displaced] == [unlucky.code]
    page = response.content.decode()
    assert "Retry settlement now" in page
    assert "Mark left now" in page
    assert "mailto:unlucky@example.com" in page
    assert lots_attention_counts(lot_ids=[paris.pk, tokyo.pk]) == {paris.pk: 3, tokyo.pk: 2}


def test_a_displaced_booking_stops_being_listed_a_week_after_its_time(lots):
    paris, _ = lots
    unlucky = _displaced(paris)
    later = unlucky.end + timedelta(days=7, minutes=1)
    assert lot_attention(lot=paris, now=unlucky.end).displaced == [unlucky]
    assert lot_attention(lot=paris, now=later).displaced == []


def test_a_booking_displaced_by_a_closure_is_listed_too(lots):
    paris, _ = lots
    reservation = book(UserFactory(), paris, start=timezone.now() + timedelta(hours=2))
    Reservation.objects.filter(pk=reservation.pk).update(status=Status.CANCELLED)
    ReservationEvent.objects.create(
        reservation=reservation,
        from_status=Status.CONFIRMED,
        to_status=Status.CANCELLED,
        actor="system",
        at=timezone.now(),
        data={"reason": "displaced_by_closure"},
    )
    assert [r.code for r in lot_attention(lot=paris).displaced] == [reservation.code]


def test_marking_an_overstayer_left_resolves_it(lots, staff_of_paris):
    paris, _ = lots
    still_in = _parked_past_its_end(paris, UserFactory())
    url = reverse("admin:lots_lot_attention", args=[paris.pk])

    response = staff_of_paris.post(
        url, {"action": "mark_left", "reservation": still_in.code}, follow=True
    )

    assert response.status_code == 200
    still_in.refresh_from_db()
    assert still_in.status == Status.COMPLETED
    event = still_in.events.filter(to_status=Status.COMPLETED).get()
    assert (event.actor, event.actor_user.email) == ("staff", "staff@example.com")
    assert response.context["attention"].overstayers == []
    assert f"{still_in.code}: marked left now" in response.content.decode()


def test_retrying_a_settlement_goes_through_the_service(lots, staff_of_paris):
    paris, _ = lots
    unsettled = _unsettled(paris)
    url = reverse("admin:lots_lot_attention", args=[paris.pk])

    response = staff_of_paris.post(
        url, {"action": "retry_settlement", "reservation": unsettled.code}, follow=True
    )

    unsettled.refresh_from_db()
    # Nothing owed and nothing taken: the retry settles it.
    assert unsettled.settlement == Settlement.SETTLED
    assert response.context["attention"].settlements == []
    assert f"{unsettled.code}: settlement settled." in response.content.decode()


def test_staff_of_one_lot_cannot_see_or_act_on_anothers(lots, staff_of_paris):
    paris, tokyo = lots
    theirs = _parked_past_its_end(tokyo, UserFactory())
    url_b = reverse("admin:lots_lot_attention", args=[tokyo.pk])

    assert staff_of_paris.get(url_b).status_code == 404
    assert (
        staff_of_paris.post(url_b, {"action": "mark_left", "reservation": theirs.code}).status_code
        == 404
    )
    # Nor through their own lot's page, by posting the other lot's reservation.
    url_a = reverse("admin:lots_lot_attention", args=[paris.pk])
    response = staff_of_paris.post(url_a, {"action": "mark_left", "reservation": theirs.code})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Status.PARKED


def test_superusers_see_any_lots_page(lots):
    boss = _client(User.objects.create_superuser(email="boss@example.com", password="x-pw-12345"))
    assert boss.get(reverse("admin:lots_lot_attention", args=[lots[1].pk])).status_code == 200


def test_the_lot_page_shows_how_many_items_are_open(lots, staff_of_paris):
    paris, _ = lots
    _unsettled(paris)
    _parked_past_its_end(paris, UserFactory())
    page = staff_of_paris.get(reverse("admin:lots_lot_change", args=[paris.pk])).content.decode()
    assert reverse("admin:lots_lot_attention", args=[paris.pk]) in page
    assert "Needs attention (2)" in page


def test_staff_who_may_only_view_cannot_act(lots):
    paris, _ = lots
    viewer = UserFactory(email="viewer@example.com", is_staff=True)
    viewer.groups.add(
        group_ensure(name="Viewers", permissions=["lots.view_lot", "reservations.view_reservation"])
    )
    LotStaff.objects.create(lot=paris, user=viewer)
    still_in = _parked_past_its_end(paris, UserFactory())
    client = _client(viewer)
    url = reverse("admin:lots_lot_attention", args=[paris.pk])

    assert "Mark left now" not in client.get(url).content.decode()
    assert (
        client.post(url, {"action": "mark_left", "reservation": still_in.code}).status_code == 403
    )
    still_in.refresh_from_db()
    assert still_in.status == Status.PARKED
