"""The occupancy of a lot over a local day: figures for a known set of
reservations, DST days, a bounded number of queries, and the admin view."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lots.models import Lot, LotStaff, Spot
from lots.services import rate_set, spots_add
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.models import User
from parking.services import group_ensure
from reservations.models import Reservation, Status
from reservations.occupancy import BOOKED, FREE, OFF, PARKED, day_bounds, lot_occupancy
from tests.factories import LotFactory, SpotFactory, UserFactory

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
DAY = date(2026, 3, 4)  # a Wednesday; Paris is on CET (UTC+1)
NOW = datetime(2026, 3, 4, 11, 30, tzinfo=PARIS)


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


def place(spot: Spot, start: datetime, end: datetime, status: str, **fields) -> Reservation:
    fields.setdefault("occupied_until", end)
    if status == Status.PENDING_PAYMENT:
        fields.setdefault("hold_expires_at", NOW + timedelta(minutes=10))
    return Reservation.objects.create(
        user=fields.pop("user", None) or UserFactory(),
        lot=spot.lot,
        spot=spot,
        vehicle_type=spot.vehicle_type,
        start=start,
        end=end,
        status=status,
        price_amount=700,
        currency="eur",
        **fields,
    )


@pytest.fixture
def paris(db) -> Lot:
    lot = LotFactory(slug="paris", name="Paris", timezone="Europe/Paris", currency="eur")
    for label in ("C-001", "C-002", "C-003"):
        SpotFactory(lot=lot, label=label, vehicle_type="car")
    SpotFactory(lot=lot, label="V-001", vehicle_type="van")
    SpotFactory(lot=lot, label="C-099", vehicle_type="car", is_active=False)
    return lot


@pytest.fixture
def known(paris):
    """A known day at the Paris lot (times local):

    C-001  08:00–10:00, arrived 08:00, left 09:30            (completed)
           12:00–13:00, unpaid hold still valid              (pending)
    C-002  09:00–13:00, arrived 09:15, still in at 11:30      (parked)
           15:00–17:00                                       (cancelled: ignored)
    C-003  14:00–16:00                                       (confirmed)
           10:00–12:00, unpaid hold lapsed                   (ignored)
    V-001  yesterday 22:00–01:00, arrived 22:00, left 01:30  (completed, overstayed)
    C-099  out of service, nothing on it
    """
    spots = {spot.label: spot for spot in paris.spots.all()}
    r = {
        "done": place(
            spots["C-001"],
            at(8),
            at(10),
            Status.COMPLETED,
            arrived_at=at(8),
            departed_at=at(9, 30),
            occupied_until=at(9, 30),
            vehicle_plate="AA100",
            user=UserFactory(email="done@example.com"),
        ),
        "hold": place(spots["C-001"], at(12), at(13), Status.PENDING_PAYMENT),
        "parked": place(
            spots["C-002"],
            at(9),
            at(13),
            Status.PARKED,
            arrived_at=at(9, 15),
            vehicle_plate="BB200",
        ),
        "cancelled": place(spots["C-002"], at(15), at(17), Status.CANCELLED),
        "later": place(spots["C-003"], at(14), at(16), Status.CONFIRMED),
        "lapsed": place(
            spots["C-003"],
            at(10),
            at(12),
            Status.PENDING_PAYMENT,
            hold_expires_at=NOW - timedelta(minutes=1),
        ),
        "overnight": place(
            spots["V-001"],
            at(22, day=DAY - timedelta(days=1)),
            at(1),
            Status.COMPLETED,
            arrived_at=at(22, day=DAY - timedelta(days=1)),
            departed_at=at(1, 30),
        ),
    }
    # Another lot's reservation on the same day never shows.
    other = LotFactory(slug="elsewhere", timezone="Europe/Paris", currency="eur")
    place(SpotFactory(lot=other, label="C-001"), at(8), at(20), Status.CONFIRMED)
    return r


def test_hour_by_hour_figures_for_a_known_day(paris, known):
    occupancy = lot_occupancy(lot=paris, day=DAY, now=NOW)

    assert occupancy.start == datetime(2026, 3, 3, 23, 0, tzinfo=UTC)
    assert occupancy.end == datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
    assert [hour.label for hour in occupancy.hours][:3] == ["00:00", "01:00", "02:00"]
    assert len(occupancy.hours) == 24
    assert occupancy.capacity == 4  # C-099 is out of service and unused

    table = {
        hour.label: (hour.parked, hour.booked, hour.free, hour.in_use_minutes)
        for hour in occupancy.hours
    }
    expected = {label: (0, 0, 4, 0) for label in table}
    expected.update(
        {
            "00:00": (1, 0, 3, 60),  # V-001's overnight car
            "01:00": (1, 0, 3, 30),  # …which overstayed until 01:30
            "08:00": (1, 0, 3, 60),  # C-001
            "09:00": (2, 0, 2, 90),  # C-001 until 09:30; C-002 held all hour, car from 09:15
            "10:00": (1, 0, 3, 60),  # C-002 (C-003's hold lapsed)
            "11:00": (1, 0, 3, 60),  # C-002, still in at 11:30
            "12:00": (0, 2, 2, 120),  # C-002 booked (car expected), C-001's unpaid hold
            "14:00": (0, 1, 3, 60),  # C-003
            "15:00": (0, 1, 3, 60),  # C-003 (C-002's cancelled booking is nothing)
        }
    )
    assert table == expected
    nine = next(hour for hour in occupancy.hours if hour.label == "09:00")
    assert nine.utilisation == pytest.approx(90 / 240)
    assert nine.percent == 38
    assert occupancy.utilisation == pytest.approx(600 / (4 * 24 * 60))
    assert occupancy.peak.label == "12:00"


def test_each_spot_row_and_its_cells(paris, known):
    occupancy = lot_occupancy(lot=paris, day=DAY, now=NOW)
    rows = {row.label: row for row in occupancy.rows}

    assert [row.label for row in occupancy.rows] == ["C-001", "C-002", "C-003", "C-099", "V-001"]
    c1 = rows["C-001"].cells
    assert (c1[7], c1[8], c1[9], c1[10], c1[12]) == (FREE, PARKED, PARKED, FREE, BOOKED)
    assert rows["C-099"].cells == [OFF] * 24
    assert {(bar.kind, bar.code) for bar in rows["C-001"].bars} == {
        ("booked", known["done"].code),
        ("parked", known["done"].code),
        ("held", known["hold"].code),
    }
    parked_bar = next(bar for bar in rows["C-002"].bars if bar.kind == PARKED)
    assert (parked_bar.start, parked_bar.end) == (at(9, 15), NOW)  # in until now
    assert rows["C-003"].in_use_minutes == 120
    assert {bar.code for row in occupancy.rows for bar in row.bars}.isdisjoint(
        {known["cancelled"].code, known["lapsed"].code}
    )


def test_the_days_arrivals_and_departures(paris, known):
    occupancy = lot_occupancy(lot=paris, day=DAY, now=NOW)

    arrivals = [(m.code, m.spot_label, m.due, m.actual) for m in occupancy.arrivals]
    assert arrivals == [
        (known["done"].code, "C-001", at(8), at(8)),
        (known["parked"].code, "C-002", at(9), at(9, 15)),
        (known["hold"].code, "C-001", at(12), None),
        (known["later"].code, "C-003", at(14), None),
    ]
    departures = [m.code for m in occupancy.departures]
    same_time = sorted([known["parked"].code, known["hold"].code])
    assert departures == [
        known["overnight"].code,
        known["done"].code,
        *same_time,
        known["later"].code,
    ]
    assert occupancy.departures[0].actual == at(1, 30)
    assert occupancy.arrivals[0].email == "done@example.com"
    assert occupancy.arrivals[0].plate == "AA100"


def test_days_when_the_clocks_change_have_23_and_25_hours(paris):
    spring, autumn = date(2026, 3, 29), date(2026, 10, 25)
    c1 = paris.spots.get(label="C-001")
    # 01:00 to 04:00 on the wall clock is two real hours on the spring day.
    place(c1, at(1, day=spring), at(4, day=spring), Status.CONFIRMED)

    short = lot_occupancy(lot=paris, day=spring, now=NOW)
    labels = [hour.label for hour in short.hours]
    assert len(labels) == 23
    assert labels[:4] == ["00:00", "01:00", "03:00", "04:00"]
    assert [hour.in_use_minutes for hour in short.hours[:4]] == [0, 60, 60, 0]
    assert short.end - short.start == timedelta(hours=23)

    long = lot_occupancy(lot=paris, day=autumn, now=NOW)
    labels = [hour.label for hour in long.hours]
    assert len(labels) == 25
    assert labels[:5] == ["00:00", "01:00", "02:00", "02:00", "03:00"]
    assert day_bounds(autumn, PARIS)[1] - day_bounds(autumn, PARIS)[0] == timedelta(hours=25)


def test_a_lot_far_from_utc_reads_its_own_day(db):
    tokyo = LotFactory(slug="tokyo", timezone="Asia/Tokyo", currency="jpy")
    spot = SpotFactory(lot=tokyo, label="C-001")
    tz = ZoneInfo("Asia/Tokyo")
    # 08:00–09:00 in Tokyo on the 4th is still the 3rd in UTC.
    place(
        spot,
        datetime(2026, 3, 4, 8, tzinfo=tz),
        datetime(2026, 3, 4, 9, tzinfo=tz),
        Status.CONFIRMED,
    )
    occupancy = lot_occupancy(lot=tokyo, day=DAY, now=NOW)
    assert occupancy.start == datetime(2026, 3, 3, 15, tzinfo=UTC)
    assert [hour.label for hour in occupancy.hours if hour.booked] == ["08:00"]
    assert lot_occupancy(lot=tokyo, day=DAY - timedelta(days=1), now=NOW).utilisation == 0


# --- queries ----------------------------------------------------------------------------


def busy_lot(n_spots: int) -> Lot:
    """A lot with n car spots, each with three reservations across the day."""
    lot = LotFactory(timezone="Europe/Paris", currency="eur")
    rate_set(lot=lot, vehicle_type="car", hourly_amount=300, daily_max_amount=2000)
    spots = spots_add(lot=lot, vehicle_type="car", count=n_spots, prefix="C")
    driver = UserFactory()
    rows = []
    for n, spot in enumerate(spots):
        for start_hour, status in (
            (7, Status.COMPLETED),
            (11, Status.PARKED),
            (16, Status.CONFIRMED),
        ):
            start = at(start_hour + n % 3)
            end = start + timedelta(hours=3)
            arrived = start if status != Status.CONFIRMED else None
            rows.append(
                Reservation(
                    user=driver,
                    lot=lot,
                    spot=spot,
                    vehicle_type="car",
                    start=start,
                    end=end,
                    occupied_until=end,
                    status=status,
                    price_amount=900,
                    currency="eur",
                    arrived_at=arrived,
                    departed_at=end if status == Status.COMPLETED else None,
                )
            )
    Reservation.objects.bulk_create(rows)
    return lot


def test_two_queries_whatever_the_number_of_spots(db, django_assert_num_queries):
    small, large = busy_lot(5), busy_lot(200)

    with django_assert_num_queries(2):
        few = lot_occupancy(lot=small, day=DAY, now=NOW)
    with django_assert_num_queries(2):
        many = lot_occupancy(lot=large, day=DAY, now=NOW)

    assert few.capacity == 5
    assert many.capacity == 200
    assert len(many.rows) == 200
    assert all(len(row.bars) >= 4 for row in many.rows)  # 3 bookings, 1 or 2 stays each


def test_the_admin_view_does_not_query_per_spot(client, db, django_assert_max_num_queries):
    boss = User.objects.create_superuser(email="boss@example.com", password="x-secret-pw")
    client.force_login(boss)
    small, large = busy_lot(5), busy_lot(200)

    def view(lot: Lot):
        url = reverse("admin:lots_lot_occupancy", args=[lot.pk])
        return client.get(url, {"day": DAY.isoformat()})

    view(small)  # warm up (content types, sessions)
    with CaptureQueriesContext(connection) as few:
        assert view(small).status_code == 200
    with django_assert_max_num_queries(len(few)):
        response = view(large)
    assert response.status_code == 200
    stays = sum(
        bar.kind == "parked" for row in response.context["occupancy"].rows for bar in row.bars
    )
    assert stays > 200
    legend = 1
    assert response.content.decode().count('class="bar-parked"') == stays + legend


# --- the admin view ---------------------------------------------------------------------


@pytest.fixture
def staff_client(client, paris):
    group = group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS)
    staff = UserFactory(email="staff@example.com", is_staff=True)
    staff.groups.add(Group.objects.get(pk=group.pk))
    LotStaff.objects.create(lot=paris, user=staff)
    client.force_login(staff)
    return client


def test_the_view_draws_the_day_and_lists_movements(staff_client, paris, known):
    url = reverse("admin:lots_lot_occupancy", args=[paris.pk])
    response = staff_client.get(url, {"day": "2026-03-04"})

    assert response.status_code == 200
    content = response.content.decode()
    assert "<svg" in content
    assert 'class="occupancy-chart"' in content
    for code in (known["done"].code, known["parked"].code, known["later"].code):
        assert f'data-code="{code}"' in content
    assert known["cancelled"].code not in content
    assert 'id="arrivals"' in content
    assert 'id="departures"' in content
    assert "?day=2026-03-03" in content  # previous day
    assert "?day=2026-03-05" in content  # next day
    assert "Europe/Paris" in content
    assert "BB200" in content


def test_the_view_is_linked_from_the_lot_list_and_page(staff_client, paris):
    url = reverse("admin:lots_lot_occupancy", args=[paris.pk])
    assert url in staff_client.get(reverse("admin:lots_lot_changelist")).content.decode()
    page = staff_client.get(reverse("admin:lots_lot_change", args=[paris.pk]))
    assert url in page.content.decode()


def test_the_view_shows_today_by_default_and_for_a_bad_date(staff_client, paris):
    url = reverse("admin:lots_lot_occupancy", args=[paris.pk])
    today = datetime.now(PARIS).date()
    assert staff_client.get(url).context["day"] == today
    response = staff_client.get(url, {"day": "not-a-day"})
    assert response.status_code == 200
    assert response.context["day"] == today
    assert staff_client.get(url, {"day": "9999-12-31"}).context["day"] == today


def test_text_in_the_chart_is_escaped(staff_client, paris):
    Lot.objects.filter(pk=paris.pk).update(name="<b>Paris</b>")
    spot = paris.spots.get(label="C-001")
    place(spot, at(9), at(10), Status.CONFIRMED, vehicle_plate="<script>")
    response = staff_client.get(
        reverse("admin:lots_lot_occupancy", args=[paris.pk]), {"day": "2026-03-04"}
    )
    content = response.content.decode()
    assert "<script>" not in content.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "&lt;script&gt;" in content
    assert "<b>Paris</b>" not in content
