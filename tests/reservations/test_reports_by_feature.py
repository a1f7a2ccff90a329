"""Reports by spot feature: for the spots with EV charging, accessible or
covered, the bookings, revenue and occupancy of a period, in the same five
queries as the rest of the report, on the page and in the CSV."""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from lots.models import LotStaff
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.models import User
from parking.services import group_ensure
from reservations.models import Status
from reservations.reports import lots_report, report_csv
from tests.factories import LotFactory, SpotFactory, UserFactory
from tests.reservations.test_reports import NOW, WEEK, at, client_for, pay, place

pytestmark = pytest.mark.django_db

WEEK_MINUTES = 7 * 24 * 60


@pytest.fixture
def garage(db):
    """C-001 has EV charging, C-002 EV charging and a roof, C-003 nothing; a
    week of bookings on them (local times, Paris, UTC+1 that week):

    Sun 1 23:00 – Mon 2 02:00  C-002 completed, started before the week: 120 min in it
    Mon 2 09:00–11:00           C-001 completed, 7.00
    Tue 3 10:00–12:00           C-002 completed, 5.00 less 1.00 refunded
    Wed 4 10:00–13:00           C-003 completed, 9.00
    Thu 5 10:00–12:00           C-001 cancelled, 2.00 kept
    """
    lot = LotFactory(slug="garage", name="Garage", timezone="Europe/Paris", currency="eur")
    ev = SpotFactory(lot=lot, label="C-001", has_ev_charging=True)
    ev_covered = SpotFactory(lot=lot, label="C-002", has_ev_charging=True, is_covered=True)
    plain = SpotFactory(lot=lot, label="C-003")
    SpotFactory(lot=lot, label="C-004", is_accessible=True, is_active=False)  # not counted
    done = Status.COMPLETED
    place(ev_covered, at(1, 23), at(2, 2), done)
    pay(place(ev, at(2, 9), at(2, 11), done), captured=700)
    pay(place(ev_covered, at(3, 10), at(3, 12), done), captured=500, refunded=100)
    pay(place(plain, at(4, 10), at(4, 13), done), captured=900)
    pay(place(ev, at(5, 10), at(5, 12), Status.CANCELLED), captured=200)
    return lot


def test_each_feature_has_its_spots_bookings_revenue_and_occupancy(
    garage, django_assert_num_queries
):
    with django_assert_num_queries(5):
        report = lots_report(lots=[garage], period=WEEK, now=NOW).lots[0]

    ev, covered, accessible = (report.features[n] for n in ("ev_charging", "covered", "accessible"))
    assert (ev.spots, ev.bookings, ev.revenue_net) == (2, 3, 700 + 400 + 200)
    assert ev.used_minutes == 120 + 120 + 120
    assert ev.occupancy == pytest.approx(360 / (2 * WEEK_MINUTES))
    assert (covered.spots, covered.bookings, covered.revenue_net) == (1, 1, 400)
    assert covered.occupancy == pytest.approx(240 / WEEK_MINUTES)
    assert (accessible.spots, accessible.bookings, accessible.occupancy) == (0, 0, None)
    # The lot's own figures are what they were.
    assert (report.spots, report.bookings, report.revenue_net) == (3, 4, 2200)


def test_the_totals_add_the_features_of_every_lot(garage):
    other = LotFactory(slug="other", timezone="Europe/Paris", currency="eur")
    ev = SpotFactory(lot=other, label="E-1", has_ev_charging=True)
    pay(place(ev, at(6, 10), at(6, 11), Status.COMPLETED), captured=300)

    total = lots_report(lots=[garage, other], period=WEEK, now=NOW).totals[0]

    assert (total.features["ev_charging"].spots, total.features["ev_charging"].bookings) == (3, 4)
    assert total.features["ev_charging"].revenue_net == 1600
    assert total.features["ev_charging"].occupancy == pytest.approx(420 / (3 * WEEK_MINUTES))


def test_the_csv_has_a_line_per_lot_and_feature(garage):
    report = lots_report(lots=[garage], period=WEEK, now=NOW)
    rows = list(csv.reader(io.StringIO(report_csv(report, with_totals=False))))

    start = rows.index(
        ["lot", "feature", "spots", "bookings", "revenue_net", "occupancy_percent", "currency"]
    )
    assert rows[start + 1 : start + 4] == [
        ["garage", "ev_charging", "2", "3", "1300", "1.8", "eur"],
        ["garage", "accessible", "0", "0", "0", "", "eur"],
        ["garage", "covered", "1", "1", "400", "2.4", "eur"],
    ]


def test_the_report_page_shows_the_breakdown_to_the_lots_staff_only(garage):
    staff = UserFactory(email="staff@example.com", is_staff=True)
    staff.groups.add(group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS))
    LotStaff.objects.create(lot=garage, user=staff)
    elsewhere = LotFactory(slug="elsewhere")
    url = reverse("admin:lots_lot_report", args=[garage.pk])
    week = {"period": "custom", "from": "2026-03-02", "to": "2026-03-08"}

    page = client_for(staff).get(url, week).content.decode()

    assert "By spot feature" in page
    ev_row = '<th scope="row">EV charging</th><td>2</td><td>3</td><td>13.00 EUR</td><td>1.8%</td>'
    assert ev_row in page
    other = reverse("admin:lots_lot_report", args=[elsewhere.pk])
    assert client_for(staff).get(other, week).status_code == 404
    boss = User.objects.create_superuser(email="boss@example.com", password="x-secret-pw")
    assert (
        "By spot feature"
        in client_for(boss).get(reverse("admin:lots_lot_reports"), week).content.decode()
    )
