"""The staff lists that grow with every booking count a page's rows up to a cap
and say "more than" beyond it: an exact count reads every row a list matches,
on every page (0.4 s on a year of 100 lots, ten times that at 1,000 lots)."""

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext

from config.admin_paging import CappedCountPaginator
from payments.models import Payment, StripeEvent
from reservations.models import IdempotencyKey, Reservation, ReservationEvent
from tests.factories import UserFactory
from tests.lots.test_admin import admin_url, book

pytestmark = pytest.mark.django_db


@pytest.fixture
def cap_of_three(monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)


@pytest.fixture
def five_bookings(lot):
    return [book(UserFactory(), lot, hours_ahead=2 + 3 * i) for i in range(5)]


def _counts(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith("SELECT COUNT(*)") and "reservations_reservation" in q["sql"]
    ]


def test_a_list_longer_than_the_cap_says_more_and_counts_no_further(
    staff_client, cap_of_three, five_bookings
):
    with CaptureQueriesContext(connection) as queries:
        response = staff_client.get(admin_url(Reservation, "changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "More than 3 reservations: filter or search to see them all" in page
    assert "5 reservations" not in page
    # One count for the page, and it stops past the cap.
    (count,) = _counts(queries)
    assert "LIMIT 4" in count, count
    assert len(response.context["cl"].result_list) == 5  # one page holds them all


def test_pages_past_the_first_still_page_through_the_capped_list(
    staff_client, cap_of_three, five_bookings, monkeypatch
):
    monkeypatch.setattr(admin.site._registry[Reservation], "list_per_page", 2)
    first = staff_client.get(admin_url(Reservation, "changelist"))
    second = staff_client.get(admin_url(Reservation, "changelist"), {"p": 2})

    shown = [r.code for r in first.context["cl"].result_list]
    shown += [r.code for r in second.context["cl"].result_list]
    newest_first = sorted(five_bookings, key=lambda r: r.start, reverse=True)
    assert shown == [r.code for r in newest_first[:4]]
    # Nobody knows how many there are: no "select all N" across the pages.
    assert 'class="question' not in first.content.decode()


def test_a_list_within_the_cap_is_counted_exactly(staff_client, cap_of_three, five_bookings):
    response = staff_client.get(admin_url(Reservation, "changelist"), {"q": five_bookings[0].code})

    page = response.content.decode()
    assert "1 result" in page
    assert "1 reservation" in page
    assert "More than" not in page


def test_a_search_matching_more_than_the_cap_says_so(staff_client, cap_of_three, five_bookings):
    # Every booking's driver's e-mail starts so (tests.factories.UserFactory).
    assert all(r.user.email.startswith("driver") for r in five_bookings)
    response = staff_client.get(admin_url(Reservation, "changelist"), {"q": "driver"})

    assert response.status_code == 200
    assert "more than 3 results" in response.content.decode()


@pytest.mark.parametrize(
    "model", [Reservation, ReservationEvent, IdempotencyKey, Payment, StripeEvent]
)
def test_every_list_that_grows_with_the_bookings_is_capped(model):
    model_admin = admin.site._registry[model]
    assert model_admin.paginator is CappedCountPaginator
    assert model_admin.show_full_result_count is False
