"""Driver API: availability (checkCapacity), reserveSpot, and a driver's reservations.

Everything goes through HTTP and asserts what a client sees; state the driver cannot
reach through the API (paid, parked, completed...) is driven with the services.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from reservations.models import IdempotencyKey, Reservation
from reservations.services import (
    idempotency_keys_prune,
    reservation_arrive,
    reservation_confirm,
    reservation_depart,
    reservation_expire,
    reservation_mark_no_show,
    spot_take_out_of_service,
)
from tests.conftest import NOW, window
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory

RESERVATIONS = "/api/v1/reservations"
CODE = re.compile(r"^[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}-[23456789ABCDEFGHJKMNPQRSTVWXYZ]{4}$")
HOUR = timedelta(hours=1)
PARIS = timezone(timedelta(hours=1))  # Europe/Paris in March, as a fixed offset


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("code"), str)
    assert body["code"]
    assert isinstance(body.get("detail"), str)
    assert body["detail"]
    if code is not None:
        assert body["code"] == code, body
    return body


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def availability_response(client, start, end, vehicle_type="car", lot_id="paris-centre"):
    return client.get(
        f"/api/v1/lots/{lot_id}/availability",
        {"vehicle_type": vehicle_type, "start": start.isoformat(), "end": end.isoformat()},
    )


def availability(client, start, end, vehicle_type="car", lot_id="paris-centre") -> dict:
    response = availability_response(client, start, end, vehicle_type, lot_id)
    assert response.status_code == 200, response.content
    return response.json()


def free(client, start, end, vehicle_type="car") -> int:
    return availability(client, start, end, vehicle_type)["free_spots"]


def book(client, start, end, *, vehicle_type="car", lot_id="paris-centre", key=None, **extra):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    body = {
        "lot_id": lot_id,
        "vehicle_type": vehicle_type,
        "start": start.isoformat(),
        "end": end.isoformat(),
        **extra,
    }
    return client.post(RESERVATIONS, body, format="json", **headers)


def booked(client, start, end, **kwargs) -> dict:
    response = book(client, start, end, **kwargs)
    assert response.status_code == 201, response.content
    return response.json()


def list_ids(client, **params) -> list[str]:
    response = client.get(RESERVATIONS, params)
    assert response.status_code == 200, response.content
    return [reservation["id"] for reservation in response.json()["results"]]


def pk(reservation: dict) -> int:
    return Reservation.objects.get(code=reservation["id"]).pk


def status_of(client, reservation: dict) -> str:
    response = client.get(f"{RESERVATIONS}/{reservation['id']}")
    assert response.status_code == 200, response.content
    return response.json()["status"]


def api_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def other_api(db) -> APIClient:
    return api_for(UserFactory())


# --- availability ---------------------------------------------------------------------


def test_availability_of_an_empty_lot_counts_every_spot_and_prices_the_window(api, lot):
    start, end = window(hours_from_now=1, length_hours=2)

    body = availability(api, start, end)

    assert body["lot_id"] == "paris-centre"
    assert body["vehicle_type"] == "car"
    assert when(body["start"]) == start
    assert when(body["end"]) == end
    assert body["is_free"] is True
    assert body["free_spots"] == 3
    assert body["price"] == {"amount": 500, "currency": "eur"}


def test_availability_echoes_the_window_as_the_same_instants_whatever_the_offset(api, lot):
    start, end = window(hours_from_now=3)

    body = availability(api, start.astimezone(PARIS), end.astimezone(PARIS))

    assert when(body["start"]) == start
    assert when(body["end"]) == end


def test_availability_needs_no_account(lot):
    start, end = window()

    assert availability_response(APIClient(), start, end).status_code == 200


@pytest.mark.parametrize(
    ("minutes", "amount"),
    [
        pytest.param(30, 250, id="half-hour-is-a-started-hour"),
        pytest.param(60, 250, id="one-hour"),
        pytest.param(61, 500, id="one-minute-into-the-second-hour"),
        pytest.param(120, 500, id="two-hours"),
        pytest.param(7 * 60, 1750, id="under-the-daily-cap"),
        pytest.param(8 * 60, 2000, id="at-the-daily-cap"),
        pytest.param(23 * 60, 2000, id="capped-within-a-day"),
        pytest.param(24 * 60, 2000, id="exactly-one-day"),
        pytest.param(25 * 60, 2250, id="one-day-and-an-hour"),
        pytest.param(24 * 60 + 1, 2250, id="one-day-and-a-minute"),
        pytest.param(2 * 24 * 60 + 3 * 60, 4750, id="two-days-and-three-hours"),
        pytest.param(2 * 24 * 60 + 10 * 60, 6000, id="each-24h-block-capped"),
        pytest.param(30 * 24 * 60, 60000, id="thirty-days"),
    ],
)
def test_the_price_is_per_started_hour_with_each_24h_block_capped(api, lot, minutes, amount):
    start = datetime.now(UTC).replace(microsecond=0) + HOUR
    end = start + timedelta(minutes=minutes)

    assert availability(api, start, end)["price"] == {"amount": amount, "currency": "eur"}


def test_availability_price_matches_the_price_of_the_booking(api, driver_api, lot):
    start, end = window(hours_from_now=2, length_hours=27.5)

    quoted = availability(api, start, end)["price"]
    reservation = booked(driver_api, start, end)

    assert reservation["price"] == quoted == {"amount": 3000, "currency": "eur"}


def test_a_booking_shows_in_the_very_next_availability_answer(api, driver_api, lot):
    start, end = window(hours_from_now=1, length_hours=2)
    assert free(api, start, end) == 3  # asked once: now possibly cached

    booked(driver_api, start, end)

    body = availability(api, start, end)
    assert body["free_spots"] == 2
    assert body["is_free"] is True


def test_every_overlapping_window_sees_a_new_booking_at_once(api, driver_api, lot):
    start, end = window(hours_from_now=2, length_hours=2)
    overlapping = [
        (start - HOUR, start + timedelta(minutes=1)),
        (end - timedelta(minutes=1), end + HOUR),
        (start - HOUR, end + HOUR),
        (start + timedelta(minutes=30), end - timedelta(minutes=30)),
    ]
    for s, e in overlapping:
        assert free(api, s, e) == 3

    booked(driver_api, start, end)

    for s, e in overlapping:
        assert free(api, s, e) == 2


def test_a_full_lot_answers_not_free_but_still_quotes_the_price(api, driver_api, lot):
    start, end = window()
    for _ in range(3):
        booked(driver_api, start, end)

    body = availability(api, start, end)

    assert body["is_free"] is False
    assert body["free_spots"] == 0
    assert body["price"] == {"amount": 500, "currency": "eur"}


def test_cancelling_gives_the_spot_back_in_the_very_next_answer(api, driver_api, lot):
    start, end = window()
    reservation = booked(driver_api, start, end)
    assert free(api, start, end) == 2

    response = driver_api.post(f"{RESERVATIONS}/{reservation['id']}/cancel")

    assert response.status_code == 200
    assert free(api, start, end) == 3


def test_back_to_back_windows_do_not_conflict(api, driver_api, lot):
    start, end = window(hours_from_now=3, length_hours=2)
    for _ in range(3):
        booked(driver_api, start, end)
    assert free(api, start, end) == 0

    # Intervals are half-open: [start, end) leaves `end` itself free.
    assert free(api, end, end + 2 * HOUR) == 3
    assert free(api, start - 2 * HOUR, start) == 3
    assert free(api, end - timedelta(minutes=1), end + HOUR) == 0
    after = booked(driver_api, end, end + 2 * HOUR)
    before = booked(driver_api, start - 2 * HOUR, start)
    assert after["status"] == before["status"] == "pending_payment"


def test_a_lapsed_hold_no_longer_blocks_availability_or_booking(
    api, driver_api, other_api, lot, frozen_now
):
    start, end = window(hours_from_now=2, length_hours=2)
    holds = [booked(driver_api, start, end) for _ in range(3)]
    assert free(api, start, end) == 0  # cached until the first hold lapses
    assert_error(book(other_api, start, end), 409, "no_spot_available")

    frozen_now.shift(timedelta(minutes=16))  # HOLD_TTL_MINUTES is 15

    body = availability(api, start, end)
    assert body["free_spots"] == 3
    assert body["is_free"] is True
    newcomer = booked(other_api, start, end)
    assert newcomer["status"] == "pending_payment"
    displaced = [hold for hold in holds if hold["spot"]["id"] == newcomer["spot"]["id"]]
    assert len(displaced) == 1
    assert status_of(driver_api, displaced[0]) == "expired"
    assert free(api, start, end) == 2


def test_a_hold_still_within_its_ttl_keeps_blocking(api, driver_api, other_api, lot, frozen_now):
    start, end = window(hours_from_now=2, length_hours=2)
    for _ in range(3):
        booked(driver_api, start, end)

    frozen_now.shift(timedelta(minutes=14))

    assert free(api, start, end) == 0
    assert_error(book(other_api, start, end), 409, "no_spot_available")


def test_a_paid_reservation_keeps_blocking_after_the_hold_ttl(
    api, driver_api, other_api, lot, frozen_now
):
    start, end = window(hours_from_now=2, length_hours=2)
    reservations = [booked(driver_api, start, end) for _ in range(3)]
    for reservation in reservations:
        reservation_confirm(reservation_id=pk(reservation))

    frozen_now.shift(timedelta(minutes=30))

    assert free(api, start, end) == 0
    assert_error(book(other_api, start, end), 409, "no_spot_available")


def test_a_vehicle_type_without_a_rate_is_not_free_and_has_no_price(api, lot):
    SpotFactory(lot=lot, label="V-001", vehicle_type="van")  # a spot, but no van rate
    start, end = window()

    body = availability(api, start, end, vehicle_type="van")

    assert body["is_free"] is False
    assert body["free_spots"] == 0
    assert body["price"] is None


def test_a_vehicle_type_with_a_rate_but_no_spot_is_not_free_but_priced(api, lot):
    RateFactory(lot=lot, vehicle_type="motorcycle", hourly_amount=100, daily_max_amount=600)
    start, end = window(length_hours=2)

    body = availability(api, start, end, vehicle_type="motorcycle")

    assert body["is_free"] is False
    assert body["free_spots"] == 0
    assert body["price"] == {"amount": 200, "currency": "eur"}


def test_spots_of_another_type_or_out_of_service_are_not_counted(api, driver_api, lot):
    SpotFactory(lot=lot, label="C-099", vehicle_type="car", is_active=False)
    SpotFactory(lot=lot, label="V-001", vehicle_type="van")
    start, end = window()

    assert free(api, start, end) == 3


def test_a_spot_taken_out_of_service_shows_at_once(api, lot):
    start, end = window()
    assert free(api, start, end) == 3

    spot = lot.spots.get(label="C-001")
    spot_take_out_of_service(spot_id=spot.pk, actor_user=None, move_reservations=False)

    assert free(api, start, end) == 2


def test_bookings_in_another_lot_do_not_change_availability(api, driver_api, lot):
    other = LotFactory(slug="elsewhere")
    RateFactory(lot=other, vehicle_type="car")
    SpotFactory(lot=other, label="C-001", vehicle_type="car")
    start, end = window()
    assert free(api, start, end) == 3

    booked(driver_api, start, end, lot_id="elsewhere")

    assert free(api, start, end) == 3


def test_availability_for_a_window_ending_a_fraction_of_a_second_later_is_not_stale(api, lot):
    # Two windows that differ by half a second are different questions: the second
    # starts a third hour. An answer cached for the first must not serve the second.
    start = datetime.now(UTC).replace(microsecond=0) + HOUR
    end = start + 2 * HOUR
    assert availability(api, start, end)["price"] == {"amount": 500, "currency": "eur"}

    later_end = end + timedelta(milliseconds=500)

    assert availability(api, start, later_end)["price"] == {"amount": 750, "currency": "eur"}


# --- reserveSpot ----------------------------------------------------------------------


def test_booking_answers_201_with_the_full_reservation(driver_api, lot, frozen_now):
    start, end = window(hours_from_now=2, length_hours=2)

    response = book(driver_api, start, end, vehicle_plate="ab-123 cd")

    assert response.status_code == 201, response.content
    body = response.json()
    assert CODE.match(body["id"]), body["id"]
    assert body["status"] == "pending_payment"
    assert body["lot_id"] == "paris-centre"
    assert set(body["spot"]) == {"id", "label", "features", "max_height_cm"}
    assert (body["spot"]["features"], body["requested_features"]) == ([], [])
    assert body["spot"]["label"] in {"C-001", "C-002", "C-003"}
    assert body["spot"]["id"].startswith("sp_")
    assert body["vehicle_type"] == "car"
    assert body["vehicle_plate"] == "AB123CD"
    assert when(body["start"]) == start
    assert when(body["end"]) == end
    assert body["price"] == {"amount": 500, "currency": "eur"}
    hold = when(body["hold_expires_at"])
    assert abs(hold - (NOW + timedelta(minutes=15))) < timedelta(seconds=10)
    assert "payment" in body


def test_a_reservation_reads_back_the_same_as_it_was_created(driver_api, lot):
    start, end = window()
    created = booked(driver_api, start, end)

    response = driver_api.get(f"{RESERVATIONS}/{created['id']}")

    assert response.status_code == 200
    assert response.json() == created


def test_no_database_key_appears_in_a_reservation(driver_api, lot):
    reservation = booked(driver_api, *window())
    row = Reservation.objects.get(code=reservation["id"])

    assert reservation["id"] != str(row.pk)
    assert reservation["spot"]["id"] != str(row.spot_id)
    assert "pk" not in reservation
    assert "user" not in reservation
    assert not any(isinstance(value, int) for value in reservation["spot"].values())


def test_each_booking_gets_its_own_spot_until_none_is_left(driver_api, lot):
    start, end = window()
    spots = {booked(driver_api, start, end)["spot"]["label"] for _ in range(3)}

    assert spots == {"C-001", "C-002", "C-003"}
    body = assert_error(book(driver_api, start, end), 409, "no_spot_available")
    assert "fields" not in body
    assert len(list_ids(driver_api)) == 3


def test_a_vehicle_type_the_lot_does_not_offer_cannot_be_booked(driver_api, lot):
    assert_error(book(driver_api, *window(), vehicle_type="van"), 409)
    assert list_ids(driver_api) == []


def test_an_overlong_plate_is_400_on_the_plate_field(driver_api, lot):
    body = assert_error(book(driver_api, *window(), vehicle_plate="AB-" + "9" * 16), 400)

    assert "vehicle_plate" in body["fields"]


# --- Idempotency-Key ------------------------------------------------------------------


def test_the_same_idempotency_key_and_body_replays_the_first_booking(api, driver_api, lot):
    start, end = window()

    first = book(driver_api, start, end, key="order-42")
    second = book(driver_api, start, end, key="order-42")

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert list_ids(driver_api) == [first.json()["id"]]
    assert free(api, start, end) == 2


def test_the_same_instant_written_in_another_offset_is_the_same_request(driver_api, lot):
    start, end = window()

    first = booked(driver_api, start, end, key="k1")
    response = book(driver_api, start.astimezone(PARIS), end.astimezone(PARIS), key="k1")

    assert response.status_code == 201
    assert response["Idempotent-Replayed"] == "true"
    assert response.json()["id"] == first["id"]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"hours_from_now": 5}, id="other-window"),
        pytest.param({"vehicle_plate": "ZZ999"}, id="other-plate"),
    ],
)
def test_the_same_idempotency_key_with_another_body_is_422(driver_api, lot, change):
    start, end = window()
    first = booked(driver_api, start, end, key="order-42", vehicle_plate="AB123")

    plate = change.get("vehicle_plate", "AB123")
    if "hours_from_now" in change:
        start, end = window(hours_from_now=change["hours_from_now"])
    response = book(driver_api, start, end, key="order-42", vehicle_plate=plate)

    assert_error(response, 422, "idempotency_key_reused")
    assert list_ids(driver_api) == [first["id"]]


def test_different_drivers_may_use_the_same_idempotency_key(api, driver_api, other_api, lot):
    start, end = window()

    mine = book(driver_api, start, end, key="same-key")
    theirs = book(other_api, start, end, key="same-key")

    assert mine.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert mine.json()["id"] != theirs.json()["id"]
    assert mine.json()["spot"]["id"] != theirs.json()["spot"]["id"]
    assert free(api, start, end) == 1


def test_a_key_replays_for_its_days_then_is_forgotten_and_books_anew(driver_api, lot, settings):
    settings.IDEMPOTENCY_KEY_DAYS = 7
    start, end = window(hours_from_now=24 * 10)
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        first = booked(driver_api, start, end, key="order-42")

        clock.shift(timedelta(days=6, hours=23))
        assert idempotency_keys_prune() == 0
        replayed = book(driver_api, start, end, key="order-42")
        assert replayed["Idempotent-Replayed"] == "true"
        assert replayed.json()["id"] == first["id"]

        clock.shift(timedelta(hours=2))  # a week and an hour after the booking
        assert idempotency_keys_prune() == 1
        again = book(driver_api, start, end, key="order-42")

    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert again.json()["id"] != first["id"]


def test_pruning_forgets_only_the_keys_past_their_days_batch_by_batch(driver_api, lot, settings):
    settings.IDEMPOTENCY_KEY_DAYS = 7
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        for hours in (30, 40, 50):
            booked(driver_api, *window(hours_from_now=24 * 10 + hours), key=f"old-{hours}")
        clock.shift(timedelta(days=3))
        kept = booked(driver_api, *window(hours_from_now=24 * 9), key="recent")
        clock.shift(timedelta(days=5))

        assert idempotency_keys_prune(batch=2) == 3
        assert idempotency_keys_prune(batch=2) == 0

    assert list(IdempotencyKey.objects.values_list("key", "reservation__code")) == [
        ("recent", kept["id"])
    ]


def test_one_pruning_run_stops_at_its_limit_and_the_next_goes_on(driver_api, lot, settings):
    # The worker runs one task at a time: a backlog must not hold back the sweeps.
    settings.IDEMPOTENCY_KEY_DAYS = 7
    with time_machine.travel(datetime.now(UTC), tick=True) as clock:
        for hours in (30, 40, 50):
            booked(driver_api, *window(hours_from_now=24 * 10 + hours), key=f"old-{hours}")
        clock.shift(timedelta(days=8))

        assert idempotency_keys_prune(batch=5, limit=2) == 2
        assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["old-50"]
        assert idempotency_keys_prune(batch=5, limit=2) == 1
        assert not IdempotencyKey.objects.exists()


def test_without_an_idempotency_key_every_post_books_again(driver_api, lot):
    start, end = window()

    first = booked(driver_api, start, end)
    second = booked(driver_api, start, end)

    assert first["id"] != second["id"]


def test_an_overlong_idempotency_key_is_400(driver_api, lot):
    assert_error(book(driver_api, *window(), key="k" * 256), 400, "invalid_idempotency_key")
    assert list_ids(driver_api) == []


def test_a_replay_after_the_lot_filled_up_still_returns_the_booking(driver_api, other_api, lot):
    start, end = window()
    first = booked(driver_api, start, end, key="retry-me")
    booked(other_api, start, end)
    booked(other_api, start, end)

    response = book(driver_api, start, end, key="retry-me")

    assert response.status_code == 201
    assert response.json()["id"] == first["id"]


def test_a_replay_after_the_start_has_passed_answers_as_the_first_time(driver_api, lot):
    start = datetime.now(UTC) + timedelta(minutes=1)
    end = start + timedelta(hours=2)
    first = booked(driver_api, start, end, key="flaky-network", vehicle_plate="AB-123-CD")

    # Six minutes later the start is out of the bookable range for a new booking,
    # but this is the same request retried: it gets its first answer.
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=6)):
        response = book(driver_api, start, end, key="flaky-network", vehicle_plate="AB-123-CD")
        fresh = book(driver_api, start, end, key="another-key", vehicle_plate="ZZ-999-ZZ")

    assert response.status_code == 201, response.content
    assert response["Idempotent-Replayed"] == "true"
    assert response.json()["id"] == first["id"]
    assert (fresh.status_code, fresh.json()["code"]) == (400, "start_in_past")


def test_a_replay_of_a_booking_whose_plate_is_now_busy_still_answers(driver_api, lot):
    start, end = window()
    first = booked(driver_api, start, end, key="again", vehicle_plate="AB123CD")
    response = book(driver_api, start, end, key="again", vehicle_plate="AB123CD")
    assert (response.status_code, response.json()["id"]) == (201, first["id"])
    other = book(driver_api, start, end, key="new", vehicle_plate="AB123CD")
    assert (other.status_code, other.json()["code"]) == (409, "vehicle_already_booked")


# --- a driver's reservations -----------------------------------------------------------


def test_the_list_shows_only_the_callers_own_reservations_newest_first(driver_api, other_api, lot):
    start, end = window()
    mine_first = booked(driver_api, start, end)
    booked(other_api, start, end)
    mine_second = booked(driver_api, start + 3 * HOUR, end + 3 * HOUR)

    assert list_ids(driver_api) == [mine_second["id"], mine_first["id"]]
    assert len(list_ids(other_api)) == 1


def test_the_list_can_be_filtered_by_status(driver_api, lot):
    start, end = window()
    kept = booked(driver_api, start, end)
    cancelled = booked(driver_api, start, end)
    driver_api.post(f"{RESERVATIONS}/{cancelled['id']}/cancel")

    assert list_ids(driver_api, status="cancelled") == [cancelled["id"]]
    assert list_ids(driver_api, status="pending_payment") == [kept["id"]]
    assert list_ids(driver_api, status="confirmed") == []
    assert_error(driver_api.get(RESERVATIONS, {"status": "lost"}), 400, "invalid_choice")


def test_someone_elses_reservation_is_404_reservation_not_found(driver_api, other_api, lot):
    theirs = booked(other_api, *window())

    assert_error(driver_api.get(f"{RESERVATIONS}/{theirs['id']}"), 404, "reservation_not_found")
    assert_error(
        driver_api.post(f"{RESERVATIONS}/{theirs['id']}/cancel"), 404, "reservation_not_found"
    )
    assert status_of(other_api, theirs) == "pending_payment"


@pytest.mark.parametrize("code", ["ZZZZ-ZZZZ", "nothing", "1"])
def test_an_unknown_reservation_is_404_reservation_not_found(driver_api, lot, code):
    assert_error(driver_api.get(f"{RESERVATIONS}/{code}"), 404, "reservation_not_found")
    assert_error(driver_api.post(f"{RESERVATIONS}/{code}/cancel"), 404, "reservation_not_found")


def test_a_reservation_code_may_be_typed_in_lower_case_or_without_the_dash(driver_api, lot):
    reservation = booked(driver_api, *window())
    code = reservation["id"]

    for typed in (code.lower(), code.replace("-", ""), f" {code.lower().replace('-', ' ')}"):
        response = driver_api.get(f"{RESERVATIONS}/{typed.strip()}")
        assert response.status_code == 200, typed
        assert response.json()["id"] == code


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", RESERVATIONS),
        ("post", RESERVATIONS),
        ("get", f"{RESERVATIONS}/ABCD-EFGH"),
        ("post", f"{RESERVATIONS}/ABCD-EFGH/cancel"),
    ],
)
def test_reservations_need_an_account_401(api, lot, method, path):
    response = getattr(api, method)(path, {}, format="json")

    assert_error(response, 401, "not_authenticated")


def test_an_anonymous_booking_attempt_books_nothing(api, lot):
    start, end = window()

    assert_error(book(api, start, end), 401, "not_authenticated")
    assert free(api, start, end) == 3


def test_a_bearer_token_client_books_without_any_csrf_token(api, driver, lot):
    token = api.post(
        "/api/v1/auth/token",
        {"email": driver.email, "password": "correct horse battery"},
        format="json",
    ).json()["token"]
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")

    response = book(client, *window())

    assert response.status_code == 201, response.content


def test_a_session_booking_without_the_csrf_token_is_refused(driver, lot):
    client = Client(enforce_csrf_checks=True)
    client.force_login(driver)
    start, end = window()
    body = {
        "lot_id": "paris-centre",
        "vehicle_type": "car",
        "start": start.isoformat(),
        "end": end.isoformat(),
    }

    refused = client.post(RESERVATIONS, body, content_type="application/json")
    assert_error(refused, 403, "permission_denied")
    assert client.get(RESERVATIONS).json()["results"] == []

    secret = "A1b2C3d4" * 4
    client.cookies["csrftoken"] = secret
    accepted = client.post(
        RESERVATIONS, body, content_type="application/json", HTTP_X_CSRFTOKEN=secret
    )
    assert accepted.status_code == 201, accepted.content


def test_the_reservation_list_pages_with_a_cursor(driver_api, lot):
    start, end = window(length_hours=1)
    ids = [booked(driver_api, start + n * HOUR, end + n * HOUR)["id"] for n in range(5)]

    first = driver_api.get(RESERVATIONS, {"page_size": 2})
    assert first.status_code == 200
    seen = [r["id"] for r in first.json()["results"]]
    next_url = first.json()["next"]
    while next_url:
        page = driver_api.get(next_url).json()
        seen += [r["id"] for r in page["results"]]
        next_url = page["next"]

    assert seen == list(reversed(ids))


# --- cancel ---------------------------------------------------------------------------


def test_cancelling_answers_200_with_the_cancelled_reservation(driver_api, lot):
    reservation = booked(driver_api, *window())

    response = driver_api.post(f"{RESERVATIONS}/{reservation['id']}/cancel")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == reservation["id"]
    assert body["status"] == "cancelled"
    assert status_of(driver_api, reservation) == "cancelled"


def test_cancelling_twice_is_still_200_cancelled(api, driver_api, lot):
    start, end = window()
    reservation = booked(driver_api, start, end)

    first = driver_api.post(f"{RESERVATIONS}/{reservation['id']}/cancel")
    second = driver_api.post(f"{RESERVATIONS}/{reservation['id']}/cancel")

    assert first.status_code == second.status_code == 200
    assert second.json()["status"] == "cancelled"
    assert second.json() == first.json()
    assert free(api, start, end) == 3


def test_a_paid_reservation_can_be_cancelled(api, driver_api, lot):
    start, end = window()
    reservation = booked(driver_api, start, end)
    reservation_confirm(reservation_id=pk(reservation))
    assert status_of(driver_api, reservation) == "confirmed"

    response = driver_api.post(f"{RESERVATIONS}/{reservation['id']}/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert free(api, start, end) == 3


def _drive_to(state: str, reservation: dict, start: datetime) -> None:
    reservation_id = pk(reservation)
    if state == "expired":
        reservation_expire(reservation_id=reservation_id, at=NOW + timedelta(minutes=16))
        return
    reservation_confirm(reservation_id=reservation_id)
    if state == "no_show":
        reservation_mark_no_show(reservation_id=reservation_id, at=start + timedelta(minutes=61))
        return
    reservation_arrive(reservation_id=reservation_id, at=start)
    if state == "completed":
        reservation_depart(reservation_id=reservation_id, at=start + HOUR)


@pytest.mark.parametrize("state", ["expired", "parked", "completed", "no_show"])
def test_cancelling_a_reservation_past_the_point_of_cancelling_is_409_illegal_transition(
    driver_api, lot, frozen_now, state
):
    start, end = window(hours_from_now=1, length_hours=3)
    reservation = booked(driver_api, start, end)
    _drive_to(state, reservation, start)

    response = driver_api.post(f"{RESERVATIONS}/{reservation['id']}/cancel")

    body = assert_error(response, 409, "illegal_transition")
    assert "fields" not in body
    assert status_of(driver_api, reservation) == state


def test_reservations_cannot_be_edited_or_deleted(driver_api, lot):
    reservation = booked(driver_api, *window())
    path = f"{RESERVATIONS}/{reservation['id']}"

    assert_error(driver_api.delete(path), 405, "method_not_allowed")
    assert_error(driver_api.patch(path, {"status": "confirmed"}, format="json"), 405)
    assert_error(driver_api.get(f"{path}/cancel"), 405, "method_not_allowed")
    assert status_of(driver_api, reservation) == "pending_payment"
