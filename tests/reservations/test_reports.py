"""A lot operator's reports: revenue by kind, bookings and their outcomes,
occupancy by weekday and hour, for a known week; the same number of queries for
a week and a year; periods; CSV; the admin pages and their scoping."""

import csv
import io
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lots.models import Lot, LotStaff, Spot
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.models import User
from parking.services import group_ensure
from payments.models import Payment
from reservations.models import (
    Reservation,
    ReservationExtension,
    Status,
    extension_payment_reference,
    payment_reference,
)
from reservations.reports import (
    BadPeriod,
    Period,
    lots_report,
    period_parse,
    report_csv,
)
from tests.factories import LotFactory, SpotFactory, UserFactory

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")
WEEK = Period("custom", date(2026, 3, 2), date(2026, 3, 8))  # Monday to Sunday, CET (UTC+1)
NOW = datetime(2026, 3, 9, 12, 0, tzinfo=PARIS)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=PARIS)


def place(spot: Spot, start, end, status, *, lead_hours: float = 10, **fields) -> Reservation:
    fields.setdefault("occupied_until", end)
    if status == Status.PENDING_PAYMENT:
        fields.setdefault("hold_expires_at", start)
    reservation = Reservation.objects.create(
        user=fields.pop("user", None) or UserFactory(),
        lot=spot.lot,
        spot=spot,
        vehicle_type=spot.vehicle_type,
        start=start,
        end=end,
        status=status,
        price_amount=700,
        currency=spot.lot.currency,
        **fields,
    )
    # Booked `lead_hours` before its start (created_at is set on insert).
    Reservation.objects.filter(pk=reservation.pk).update(
        created_at=start - timedelta(hours=lead_hours)
    )
    return reservation


def pay(reservation: Reservation, *, captured: int, refunded: int = 0, kind="booking", ref=None):
    return Payment.objects.create(
        reference=ref or payment_reference(reservation),
        kind=kind,
        user=reservation.user,
        currency=reservation.currency,
        amount=max(captured, 1),
        amount_authorised=captured,
        amount_captured=captured,
        amount_refunded=refunded,
        status=Payment.Status.CAPTURED,
        payment_intent_id=f"pi_{reservation.code}_{kind}",
    )


@pytest.fixture
def paris(db) -> Lot:
    lot = LotFactory(slug="paris", name="Paris", timezone="Europe/Paris", currency="eur")
    for n in range(1, 5):
        SpotFactory(lot=lot, label=f"C-00{n}")
    SpotFactory(lot=lot, label="C-099", is_active=False)
    return lot


@pytest.fixture
def known_week(paris):
    """A week at the Paris lot (local times):

    Sun 1 23:00 – Mon 2 02:00  completed, started before the week (occupancy only)
    Mon 2 09:00–11:00           completed; paid 7.00
    Tue 3 10:30–12:00           completed, left 13:00 (overstay); 5.25 + 3.50 overstay
    Wed 4 08:00–10:00           no-show, declared 09:00; 3.00 captured; booked 20 h ahead
    Thu 5 10:00–12:00           cancelled late: 7.00 captured, 2.00 refunded
    Fri 6 10:00–12:00           expired hold (not a booking)
    Sat 7 14:00–17:00           extended from 16:00, left 16:30: 7.00 − 1.00, extension 3.50
    Mon 9 10:00–12:00           after the week
    Another lot, Mon 2          never counted
    """
    spots = list(paris.spots.filter(is_active=True).order_by("label"))
    before = place(
        spots[0], at(1, 23), at(2, 2), Status.COMPLETED, arrived_at=at(1, 23), departed_at=at(2, 2)
    )
    pay(before, captured=1050)
    monday = place(
        spots[0], at(2, 9), at(2, 11), Status.COMPLETED, arrived_at=at(2, 9), departed_at=at(2, 11)
    )
    pay(monday, captured=700)
    tuesday = place(
        spots[1],
        at(3, 10, 30),
        at(3, 12),
        Status.COMPLETED,
        arrived_at=at(3, 10, 30),
        departed_at=at(3, 13),
        occupied_until=at(3, 13),
    )
    pay(tuesday, captured=525)
    pay(tuesday, captured=350, kind="overstay")
    wednesday = place(
        spots[2], at(4, 8), at(4, 10), Status.NO_SHOW, occupied_until=at(4, 9), lead_hours=20
    )
    pay(wednesday, captured=300)
    thursday = place(spots[3], at(5, 10), at(5, 12), Status.CANCELLED)
    pay(thursday, captured=700, refunded=200)
    place(spots[3], at(6, 10), at(6, 12), Status.EXPIRED)
    saturday = place(
        spots[0],
        at(7, 14),
        at(7, 17),
        Status.COMPLETED,
        arrived_at=at(7, 14),
        departed_at=at(7, 16, 30),
        occupied_until=at(7, 16, 30),
    )
    pay(saturday, captured=700, refunded=100)
    ReservationExtension.objects.create(
        reservation=saturday,
        number=1,
        old_end=at(7, 16),
        new_end=at(7, 17),
        amount=350,
        currency="eur",
        state=ReservationExtension.State.APPLIED,
        created_at=at(7, 15),
    )
    pay(
        saturday,
        captured=350,
        kind="extension",
        ref=extension_payment_reference(saturday, 1),
    )
    later = place(spots[1], at(9, 10), at(9, 12), Status.CONFIRMED)
    pay(later, captured=0)
    other = LotFactory(slug="elsewhere", timezone="Europe/Paris", currency="eur")
    stranger = place(
        SpotFactory(lot=other), at(2, 8), at(2, 20), Status.COMPLETED, arrived_at=at(2, 8)
    )
    pay(stranger, captured=5000)


def test_revenue_by_kind_is_captured_minus_refunded(paris, known_week):
    report = lots_report(lots=[paris], period=WEEK, now=NOW).lots[0]

    # Parking: 7.00 + 5.25 + (7.00 − 2.00) + (7.00 − 1.00 + 3.50 extension).
    assert (report.revenue["parking"].captured, report.revenue["parking"].refunded) == (2975, 300)
    assert report.revenue["parking"].net == 2675
    assert report.revenue["no_show"].net == 300
    assert report.revenue["overstay"].net == 350
    assert report.revenue_net == 3325


def test_bookings_and_their_outcomes(paris, known_week):
    report = lots_report(lots=[paris], period=WEEK, now=NOW).lots[0]

    assert report.bookings == 5  # the lapsed hold was never a booking
    assert (report.completed, report.no_shows, report.cancelled) == (3, 1, 1)
    assert (report.parked, report.upcoming) == (0, 0)
    assert report.no_show_rate == pytest.approx(1 / 4)
    assert report.overstays == 1
    assert report.overstay_rate == pytest.approx(1 / 3)
    # Stays of 2 h, 2 h 30 and 2 h 30.
    assert report.average_stay == timedelta(minutes=140)
    # Booked 10 h ahead, and one 20 h ahead.
    assert report.lead_time == timedelta(hours=12)


def test_occupancy_by_weekday_and_hour(paris, known_week):
    report = lots_report(lots=[paris], period=WEEK, now=NOW).lots[0]
    mon, tue, wed, thu, fri, sat, sun = range(7)

    assert report.spots == 4
    shares = {
        (day, hour): report.occupancy(day, hour)
        for day in range(7)
        for hour in range(24)
        if report.occupancy(day, hour)
    }
    assert shares == {
        (mon, 0): 0.25,  # the car in since Sunday night
        (mon, 1): 0.25,
        (mon, 9): 0.25,
        (mon, 10): 0.25,
        (tue, 10): 0.125,  # from 10:30
        (tue, 11): 0.25,
        (tue, 12): 0.25,  # overstayed until 13:00
        (wed, 8): 0.25,  # the no-show held its spot until declared at 09:00
        (sat, 14): 0.25,
        (sat, 15): 0.25,
        (sat, 16): 0.125,  # left at 16:30
    }
    assert report.occupancy(thu, 10) == 0.0  # cancelled: holds nothing
    assert report.occupancy(fri, 10) == 0.0  # lapsed hold
    assert report.occupancy(sun, 23) == 0.0
    assert report.occupancy_overall == pytest.approx(600 / (7 * 24 * 4 * 60))


def test_a_lot_far_from_utc_reads_its_own_hours(db):
    tokyo = LotFactory(slug="tokyo", timezone="Asia/Tokyo", currency="jpy")
    spot = SpotFactory(lot=tokyo)
    tz = ZoneInfo("Asia/Tokyo")
    # Monday 08:00–09:00 in Tokyo is Sunday 23:00 UTC.
    place(
        spot,
        datetime(2026, 3, 2, 8, tzinfo=tz),
        datetime(2026, 3, 2, 9, tzinfo=tz),
        Status.CONFIRMED,
    )
    report = lots_report(lots=[tokyo], period=WEEK, now=NOW).lots[0]

    assert report.occupancy(0, 8) == 1.0
    assert report.occupancy(6, 23) == 0.0
    assert report.bookings == 1


def test_totals_sum_lots_per_currency(paris, known_week):
    tokyo = LotFactory(slug="tokyo", name="Tokyo", timezone="Asia/Tokyo", currency="jpy")
    spot = SpotFactory(lot=tokyo)
    tz = ZoneInfo("Asia/Tokyo")
    booking = place(
        spot,
        datetime(2026, 3, 3, 8, tzinfo=tz),
        datetime(2026, 3, 3, 9, tzinfo=tz),
        Status.COMPLETED,
        arrived_at=datetime(2026, 3, 3, 8, tzinfo=tz),
        departed_at=datetime(2026, 3, 3, 9, tzinfo=tz),
    )
    pay(booking, captured=600)
    report = lots_report(lots=[paris, tokyo], period=WEEK, now=NOW)

    totals = {total.currency: total for total in report.totals}
    assert set(totals) == {"eur", "jpy"}
    assert totals["eur"].revenue_net == 3325
    assert totals["jpy"].revenue_net == 600
    assert totals["jpy"].bookings == 1


def test_queries_are_the_same_for_a_week_and_a_year(paris, known_week):
    tokyo = LotFactory(slug="tokyo", timezone="Asia/Tokyo", currency="jpy")
    SpotFactory(lot=tokyo)
    year = Period("custom", date(2025, 3, 9), date(2026, 3, 8))
    counts = []
    for period in (WEEK, year):
        with CaptureQueriesContext(connection) as queries:
            lots_report(lots=[paris, tokyo], period=period, now=NOW)
        counts.append(len(queries))
    assert counts == [5, 5]


def test_a_year_of_history_is_read_in_five_queries(paris, django_assert_num_queries):
    """A year of bookings (about 30 a day on 4 spots) read with five aggregate
    queries, and the figures add up."""
    spots = list(paris.spots.filter(is_active=True))
    driver = UserFactory()
    rng = random.Random(15)
    rows, payments = [], []
    first = datetime(2025, 3, 9, tzinfo=UTC)
    for day in range(365):
        for n in range(30):
            # Spot n % 4, in its own three-hour slot of the day: never overlapping.
            offset = (n // 4) * 180 + rng.randrange(0, 60, 15)
            start = first + timedelta(days=day, minutes=offset)
            end = start + timedelta(minutes=rng.choice((30, 60, 90, 120)))
            code = f"Y{day:03}-{n:04}"
            rows.append(
                Reservation(
                    code=code,
                    user=driver,
                    lot=paris,
                    spot=spots[n % 4],
                    vehicle_type="car",
                    start=start,
                    end=end,
                    occupied_until=end,
                    status=Status.COMPLETED,
                    price_amount=100,
                    currency="eur",
                    arrived_at=start,
                    departed_at=end,
                )
            )
            payments.append(
                Payment(
                    reference=f"reservation:{code}",
                    user=driver,
                    currency="eur",
                    amount=100,
                    amount_captured=100,
                    status=Payment.Status.CAPTURED,
                )
            )
    Reservation.objects.bulk_create(rows, batch_size=2000)
    Payment.objects.bulk_create(payments, batch_size=2000)
    year = Period("custom", date(2025, 3, 1), date(2026, 3, 31))

    with django_assert_num_queries(5):
        report = lots_report(lots=[paris], period=year, now=NOW).lots[0]

    assert report.bookings == 365 * 30
    assert report.revenue_net == 365 * 30 * 100
    assert report.completed == 365 * 30
    # Every minute booked is counted once, in its hour.
    booked_minutes = sum((r.end - r.start).total_seconds() / 60 for r in rows)
    assert sum(map(sum, report.used)) == pytest.approx(booked_minutes)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, Period("last7", date(2026, 3, 3), date(2026, 3, 9))),
        ({"period": "last30"}, Period("last30", date(2026, 2, 8), date(2026, 3, 9))),
        ({"period": "month"}, Period("month", date(2026, 3, 1), date(2026, 3, 9))),
        (
            {"period": "custom", "from": "2026-01-01", "to": "2026-01-31"},
            Period("custom", date(2026, 1, 1), date(2026, 1, 31)),
        ),
    ],
)
def test_periods(params, expected):
    assert period_parse(params, date(2026, 3, 9)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"period": "forever"},
        {"period": "custom", "from": "2026-02-01"},
        {"period": "custom", "from": "2026-02-01", "to": "2026-01-01"},
        {"period": "custom", "from": "2000-01-01", "to": "2026-01-01"},
        {"period": "custom", "from": "x", "to": "y"},
    ],
)
def test_bad_periods_are_refused(params):
    with pytest.raises(BadPeriod):
        period_parse(params, date(2026, 3, 9))


def test_the_periods_days_are_the_lots_own(paris):
    start, end = WEEK.bounds(PARIS)
    assert start == datetime(2026, 3, 1, 23, tzinfo=UTC)
    assert end == datetime(2026, 3, 8, 23, tzinfo=UTC)


def test_the_csv_has_the_same_numbers(paris, known_week):
    report = lots_report(lots=[paris], period=WEEK, now=NOW)
    rows = list(csv.reader(io.StringIO(report_csv(report, with_totals=True))))

    header, paris_row, total_row = rows[0], rows[1], rows[2]
    line = dict(zip(header, paris_row, strict=True))
    assert line["lot"] == "paris"
    assert (line["revenue_parking"], line["revenue_no_show"], line["revenue_overstay"]) == (
        "2675",
        "300",
        "350",
    )
    assert (line["revenue_net"], line["bookings"], line["no_shows"]) == ("3325", "5", "1")
    assert (line["no_show_rate_percent"], line["average_stay_minutes"]) == ("25.0", "140")
    assert total_row[0] == "TOTAL"
    occupancy = [row for row in rows if row[:3] == ["paris", "Mon", "09:00"]]
    assert occupancy == [["paris", "Mon", "09:00", "25.0"]]


# --- the admin pages --------------------------------------------------------------------


@pytest.fixture
def two_lots(paris, known_week):
    tokyo = LotFactory(slug="tokyo", name="Tokyo", timezone="Asia/Tokyo", currency="jpy")
    SpotFactory(lot=tokyo)
    staff = UserFactory(email="staff@example.com", is_staff=True)
    staff.groups.add(group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS))
    LotStaff.objects.create(lot=paris, user=staff)
    boss = User.objects.create_superuser(email="boss@example.com", password="x-secret-pw")
    return {"paris": paris, "tokyo": tokyo, "staff": staff, "boss": boss}


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


CUSTOM_WEEK = {"period": "custom", "from": "2026-03-02", "to": "2026-03-08"}


def test_the_report_page_shows_the_lots_figures_and_charts(two_lots):
    staff = client_for(two_lots["staff"])
    url = reverse("admin:lots_lot_report", args=[two_lots["paris"].pk])

    response = staff.get(url, CUSTOM_WEEK)

    assert response.status_code == 200
    page = response.content.decode()
    assert "33.25" in page  # the week's net revenue, €33.25
    assert 'class="report-chart heatmap"' in page
    assert 'class="report-chart revenue"' in page
    assert "period=custom&amp;from=2026-03-02&amp;to=2026-03-08&amp;export=csv" in page


def test_the_report_csv_is_a_download(two_lots):
    staff = client_for(two_lots["staff"])
    url = reverse("admin:lots_lot_report", args=[two_lots["paris"].pk])

    response = staff.get(url, {**CUSTOM_WEEK, "export": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="paris-2026-03-02-2026-03-08.csv"' in response["Content-Disposition"]
    assert response.content.decode().splitlines()[1].startswith("paris,Paris,eur,2026-03-02")


def test_a_bad_period_shows_the_last_seven_days_and_says_so(two_lots):
    staff = client_for(two_lots["staff"])
    url = reverse("admin:lots_lot_report", args=[two_lots["paris"].pk])

    response = staff.get(url, {"period": "custom", "from": "2026-03-09", "to": "2026-03-01"})

    assert response.status_code == 200
    assert response.context["period"].key == "last7"
    assert "ends before it starts" in response.content.decode()


@pytest.mark.parametrize("period", [{"period": "last7"}, CUSTOM_WEEK, {"period": "last30"}])
def test_the_report_page_queries_are_bounded_whatever_the_period(
    two_lots, period, django_assert_max_num_queries
):
    staff = client_for(two_lots["staff"])
    url = reverse("admin:lots_lot_report", args=[two_lots["paris"].pk])
    staff.get(url)  # warm the session and permission caches
    year = {"period": "custom", "from": "2025-03-09", "to": "2026-03-08"}
    for params in (period, year):
        # Session, user, permissions, the lot, its scope, then the five of the report.
        with django_assert_max_num_queries(12):
            assert staff.get(url, params).status_code == 200


def test_staff_of_one_lot_get_404_for_anothers_report(two_lots):
    staff = client_for(two_lots["staff"])
    for params in ({}, {"export": "csv"}):
        url = reverse("admin:lots_lot_report", args=[two_lots["tokyo"].pk])
        assert staff.get(url, params).status_code == 404


def test_the_totals_page_covers_only_the_staff_members_lots(two_lots):
    staff = client_for(two_lots["staff"])
    url = reverse("admin:lots_lot_reports")

    response = staff.get(url, CUSTOM_WEEK)
    assert response.status_code == 200
    assert [f["report"].lot.slug for f in response.context["rows"]] == ["paris"]
    assert "Tokyo" not in response.content.decode()
    csv_text = staff.get(url, {**CUSTOM_WEEK, "export": "csv"}).content.decode()
    assert "tokyo" not in csv_text
    assert "elsewhere" not in csv_text

    boss = client_for(two_lots["boss"])
    slugs = {f["report"].lot.slug for f in boss.get(url, CUSTOM_WEEK).context["rows"]}
    assert slugs == {"paris", "tokyo", "elsewhere"}


def test_superusers_see_any_lots_report(two_lots):
    boss = client_for(two_lots["boss"])
    url = reverse("admin:lots_lot_report", args=[two_lots["tokyo"].pk])
    assert boss.get(url).status_code == 200


def test_a_driver_gets_no_report(two_lots):
    driver = client_for(UserFactory(email="someone@example.com"))
    for url in (
        reverse("admin:lots_lot_report", args=[two_lots["paris"].pk]),
        reverse("admin:lots_lot_reports"),
    ):
        response = driver.get(url)
        assert response.status_code == 302
        assert "/admin/login/" in response["Location"]


def test_reports_are_linked_from_the_lot_page_and_the_lot_list(two_lots):
    staff = client_for(two_lots["staff"])
    paris = two_lots["paris"]
    page = staff.get(reverse("admin:lots_lot_change", args=[paris.pk])).content.decode()
    assert reverse("admin:lots_lot_report", args=[paris.pk]) in page
    listing = staff.get(reverse("admin:lots_lot_changelist")).content.decode()
    assert reverse("admin:lots_lot_reports") in listing


def test_a_lot_name_never_reaches_a_spreadsheet_as_a_formula(paris, known_week):
    Lot.objects.filter(pk=paris.pk).update(name='=HYPERLINK("http://evil")')
    paris.refresh_from_db()
    report = lots_report(lots=[paris], period=WEEK, now=NOW)
    row = list(csv.reader(io.StringIO(report_csv(report, with_totals=False))))[1]
    assert row[1] == '\'=HYPERLINK("http://evil")'
