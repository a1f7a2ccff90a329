"""Lot facts (issue #14): opening hours, height limit and entry instructions.

Opening hours are weekly, in the lot's own time zone (DST-correct through
zoneinfo); no hours means open 24/7. A booking or an availability question for
a window the lot is not open for throughout is a 409 outside_opening_hours, on
the API and the website. Staff edit the facts in the admin, for their lots only.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from config.errors import InvalidInput
from lots.hours import first_closed_moment, open_periods, weekly_summary
from lots.models import Lot, LotStaff, OpeningHours
from lots.services import lot_facts_set
from parking.management.commands.seed_demo import STAFF_PERMISSIONS
from parking.services import group_ensure
from reservations.models import Reservation
from tests.factories import LotFactory, UserFactory
from tests.lots.test_lots_api import assert_error

PARIS = ZoneInfo("Europe/Paris")
WEEKDAYS_7_TO_22 = [(day, time(7), time(22)) for day in range(5)]  # Mon-Fri


def paris(*args) -> datetime:
    return datetime(*args, tzinfo=PARIS)


# --- the rules, pure ----------------------------------------------------------------------


def test_without_hours_a_lot_is_open_all_the_time():
    start = paris(2026, 3, 7, 2, 0)
    assert first_closed_moment((), PARIS, start, start + timedelta(days=30)) is None
    assert weekly_summary(()) == []


def test_a_window_inside_the_hours_is_open_and_one_past_closing_is_closed_at_closing():
    tuesday = paris(2026, 3, 3, 8, 0)
    assert (
        first_closed_moment(WEEKDAYS_7_TO_22, PARIS, tuesday, tuesday + timedelta(hours=2)) is None
    )
    late = paris(2026, 3, 3, 21, 0)
    assert first_closed_moment(WEEKDAYS_7_TO_22, PARIS, late, late + timedelta(hours=2)) == paris(
        2026, 3, 3, 22, 0
    )
    saturday = paris(2026, 3, 7, 10, 0)
    closed = first_closed_moment(WEEKDAYS_7_TO_22, PARIS, saturday, saturday + timedelta(hours=1))
    assert closed == saturday
    overnight = paris(2026, 3, 3, 20, 0)  # Tue 20:00 to Wed 09:00: closed at 22:00
    closed = first_closed_moment(WEEKDAYS_7_TO_22, PARIS, overnight, paris(2026, 3, 4, 9, 0))
    assert closed == paris(2026, 3, 3, 22, 0)


def test_hours_that_run_through_midnight_join_up():
    # Fri 18:00-24:00 then Sat 00:00-06:00: one night, bookable whole.
    hours = [(4, time(18), time(0)), (5, time(0), time(6))]
    start, end = paris(2026, 3, 6, 19, 0), paris(2026, 3, 7, 5, 0)
    assert first_closed_moment(hours, PARIS, start, end) is None
    assert first_closed_moment(hours, PARIS, start, paris(2026, 3, 7, 7, 0)) == paris(
        2026, 3, 7, 6, 0
    )
    assert open_periods(hours, PARIS, start, end) == [
        (paris(2026, 3, 6, 18, 0).astimezone(UTC), paris(2026, 3, 7, 6, 0).astimezone(UTC))
    ]


def test_a_lot_opening_at_seven_opens_at_seven_local_on_both_sides_of_a_clock_change():
    """Paris moves from UTC+1 to UTC+2 on Sunday 29 March 2026 and back on Sunday
    25 October: 07:00 at the lot is 06:00 UTC on the Saturday, 05:00 UTC on the
    Sunday. A fixed offset would open an hour early or late on one of them."""
    daily = [(day, time(7), time(22)) for day in range(7)]
    hour = timedelta(hours=1)
    saturday_7 = datetime(2026, 3, 28, 6, 0, tzinfo=UTC)
    sunday_7 = datetime(2026, 3, 29, 5, 0, tzinfo=UTC)
    assert first_closed_moment(daily, PARIS, saturday_7, saturday_7 + hour) is None
    assert first_closed_moment(daily, PARIS, sunday_7, sunday_7 + hour) is None
    assert first_closed_moment(daily, PARIS, sunday_7 - hour, sunday_7) == sunday_7 - hour
    assert first_closed_moment(daily, PARIS, saturday_7 - hour, saturday_7) == saturday_7 - hour
    # Autumn: the night of 24-25 October has 25 hours; 22:00 on Sunday is 21:00 UTC.
    sunday_evening = datetime(2026, 10, 25, 20, 0, tzinfo=UTC)  # 21:00 local
    closed = first_closed_moment(daily, PARIS, sunday_evening, sunday_evening + 2 * hour)
    assert closed == datetime(2026, 10, 25, 21, 0, tzinfo=UTC)


def test_the_week_is_summed_up_with_equal_days_grouped():
    hours = [*WEEKDAYS_7_TO_22, (5, time(8), time(0))]
    assert weekly_summary(hours) == [
        ("Mon–Fri", "07:00–22:00"),
        ("Sat", "08:00–24:00"),
        ("Sun", "Closed"),
    ]


# --- the service ---------------------------------------------------------------------------


def test_setting_facts_replaces_them_and_ends_cached_answers(lot):
    version = Lot.objects.get(pk=lot.pk).availability_version
    lot_facts_set(
        lot=lot,
        height_limit_cm=210,
        entry_instructions="  Ramp on rue X.  ",
        opening_hours=WEEKDAYS_7_TO_22,
    )
    lot_facts_set(lot=lot, height_limit_cm=190, opening_hours=[(0, time(6), time(20))])
    lot.refresh_from_db()
    assert lot.height_limit_cm == 190
    assert lot.entry_instructions == ""
    assert list(lot.opening_hours.values_list("weekday", "opens", "closes")) == [
        (0, time(6), time(20))
    ]
    assert lot.availability_version == version + 2


@pytest.mark.parametrize(
    ("facts", "code"),
    [
        ({"height_limit_cm": 20}, "invalid_height_limit"),
        ({"height_limit_cm": 5000}, "invalid_height_limit"),
        ({"opening_hours": [(0, time(9), time(8))]}, "invalid_opening_hours"),
        ({"opening_hours": [(0, time(9), time(9))]}, "invalid_opening_hours"),
        ({"opening_hours": [(7, time(9), time(10))]}, "invalid_opening_hours"),
        (
            {"opening_hours": [(1, time(9), time(10)), (1, time(11), time(12))]},
            "invalid_opening_hours",
        ),
    ],
)
def test_bad_facts_are_refused_with_a_code(lot, facts, code):
    with pytest.raises(InvalidInput) as refused:
        lot_facts_set(lot=lot, **facts)
    assert refused.value.code == code
    assert not OpeningHours.objects.filter(lot=lot).exists()


# --- booking and availability --------------------------------------------------------------


def window(start: datetime, hours: float = 2) -> dict:
    return {
        "lot_id": "paris-centre",
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=hours)).isoformat(),
    }


@pytest.fixture
def weekday_lot(lot):
    return lot_facts_set(lot=lot, opening_hours=WEEKDAYS_7_TO_22)


def test_a_booking_outside_the_hours_is_409_with_a_sentence(driver_api, weekday_lot, frozen_now):
    # NOW is Wednesday 4 March 2026, 11:00 in Paris.
    response = driver_api.post(
        "/api/v1/reservations", window(paris(2026, 3, 5, 21, 0)), format="json"
    )
    body = assert_error(response, 409, "outside_opening_hours")
    assert body["detail"] == (
        "Lot 0 is closed on Thu 5 Mar 2026 at 22:00 (local time), within the times you chose; "
        "its opening hours are Mon–Fri 07:00–22:00, Sat–Sun Closed."
    ).replace("Lot 0", weekday_lot.name)
    assert body["fields"] == {"end": [{"code": "outside_opening_hours", "detail": body["detail"]}]}
    saturday = driver_api.post(
        "/api/v1/reservations", window(paris(2026, 3, 7, 10, 0)), format="json"
    )
    assert assert_error(saturday, 409, "outside_opening_hours")["fields"].keys() == {"start"}
    assert not Reservation.objects.exists()


def test_a_booking_inside_the_hours_goes_ahead(driver_api, weekday_lot, frozen_now):
    response = driver_api.post(
        "/api/v1/reservations", window(paris(2026, 3, 5, 19, 0), 3), format="json"
    )
    assert response.status_code == 201, response.content


def test_availability_says_so_too(api, weekday_lot, frozen_now):
    url = f"/api/v1/lots/{weekday_lot.slug}/availability"

    def ask(start: datetime, hours: float):
        return api.get(
            url,
            {
                "vehicle_type": "car",
                "start": start.isoformat(),
                "end": (start + timedelta(hours=hours)).isoformat(),
            },
        )

    assert ask(paris(2026, 3, 5, 9, 0), 2).json()["is_free"] is True
    assert_error(ask(paris(2026, 3, 7, 9, 0), 2), 409, "outside_opening_hours")
    # Hours changed: the cached answer for the same window ends with them.
    lot_facts_set(lot=weekday_lot, opening_hours=[(3, time(12), time(18))])
    assert_error(ask(paris(2026, 3, 5, 9, 0), 2), 409, "outside_opening_hours")
    lot_facts_set(lot=weekday_lot, opening_hours=[])
    assert ask(paris(2026, 3, 7, 9, 0), 2).json()["is_free"] is True


def test_the_lot_api_shows_the_facts(api, lot):
    lot_facts_set(
        lot=lot,
        height_limit_cm=195,
        entry_instructions="Ring the bell.",
        opening_hours=[(0, time(7), time(0)), (6, time(0), time(0))],
    )
    body = api.get(f"/api/v1/lots/{lot.slug}").json()
    assert body["open_24_7"] is False
    assert body["opening_hours"] == [
        {"weekday": "monday", "opens": "07:00", "closes": "24:00"},
        {"weekday": "sunday", "opens": "00:00", "closes": "24:00"},
    ]
    assert body["height_limit_cm"] == 195
    assert body["entry_instructions"] == "Ring the bell."
    other = LotFactory(slug="open-all-day")
    body = api.get(f"/api/v1/lots/{other.slug}").json()
    assert (body["open_24_7"], body["opening_hours"], body["height_limit_cm"]) == (True, [], None)


# --- staff in the admin --------------------------------------------------------------------


@pytest.fixture
def staff_of(db):
    def make(lot: Lot) -> Client:
        group = group_ensure(name="Lot staff", permissions=STAFF_PERMISSIONS)
        staff = UserFactory(email=f"staff-{lot.slug}@example.com", is_staff=True)
        staff.groups.add(group)
        LotStaff.objects.create(lot=lot, user=staff)
        client = Client()
        client.force_login(staff)
        return client

    return make


def lot_form(lot: Lot, **fields) -> dict:
    return {
        "name": lot.name,
        "address": lot.address,
        "city": lot.city,
        "timezone": lot.timezone,
        "is_active": "on",
        "rates-TOTAL_FORMS": "0",
        "rates-INITIAL_FORMS": "0",
        "opening_hours-TOTAL_FORMS": "0",
        "opening_hours-INITIAL_FORMS": "0",
        **fields,
    }


def test_staff_set_their_lots_hours_height_and_instructions_in_the_admin(
    lot, staff_of, api, frozen_now
):
    staff = staff_of(lot)
    url = reverse("admin:lots_lot_change", args=[lot.pk])
    page = staff.get(url).content.decode()
    assert "Opening hours" in page
    assert "Height limit cm" in page or "height_limit_cm" in page
    response = staff.post(
        url,
        lot_form(
            lot,
            height_limit_cm="205",
            entry_instructions="Enter from the north ramp.",
            **{
                "opening_hours-TOTAL_FORMS": "2",
                "opening_hours-0-weekday": "3",
                "opening_hours-0-opens": "08:00",
                "opening_hours-0-closes": "20:00",
                "opening_hours-1-weekday": "4",
                "opening_hours-1-opens": "08:00",
                "opening_hours-1-closes": "00:00",
            },
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    lot.refresh_from_db()
    assert (lot.height_limit_cm, lot.entry_instructions) == (205, "Enter from the north ramp.")
    assert list(lot.opening_hours.values_list("weekday", "opens", "closes")) == [
        (3, time(8), time(20)),
        (4, time(8), time(0)),
    ]
    # Thursday 5 March, 19:00-21:00 in Paris: past Thursday's closing.
    start = paris(2026, 3, 5, 19, 0)
    answer = api.get(
        f"/api/v1/lots/{lot.slug}/availability",
        {
            "vehicle_type": "car",
            "start": start.isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(),
        },
    )
    assert_error(answer, 409, "outside_opening_hours")


def test_closing_before_opening_is_a_form_error_in_the_admin(lot, staff_of):
    staff = staff_of(lot)
    response = staff.post(
        reverse("admin:lots_lot_change", args=[lot.pk]),
        lot_form(
            lot,
            **{
                "opening_hours-TOTAL_FORMS": "1",
                "opening_hours-0-weekday": "0",
                "opening_hours-0-opens": "18:00",
                "opening_hours-0-closes": "06:00",
            },
        ),
    )
    assert response.status_code == 200
    assert "Closing must be after opening" in response.content.decode()
    assert not OpeningHours.objects.exists()


def test_staff_cannot_touch_another_lots_facts(lot, staff_of):
    other = LotFactory(slug="elsewhere")
    staff = staff_of(lot)
    url = reverse("admin:lots_lot_change", args=[other.pk])
    assert staff.get(url).status_code == 404
    response = staff.post(url, lot_form(other, height_limit_cm="300"))
    assert response.status_code == 404
    other.refresh_from_db()
    assert other.height_limit_cm is None


def test_the_demo_lots_have_facts_and_seeding_twice_changes_nothing(db):
    call_command("seed_demo", stdout=io.StringIO())
    versions = dict(Lot.objects.values_list("slug", "availability_version"))
    call_command("seed_demo", stdout=io.StringIO())
    assert dict(Lot.objects.values_list("slug", "availability_version")) == versions
    paris_lot = Lot.objects.get(slug="paris-opera")
    assert paris_lot.height_limit_cm == 190
    assert "Rue Auber" in paris_lot.entry_instructions
    assert Lot.objects.get(slug="tokyo-shinjuku").opening_hours.count() == 7
