"""The website's forms: wall-clock times at a lot become aware UTC times, DST-safe."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parking.forms import (
    LocalDateTimeField,
    PayForm,
    ReserveForm,
    SearchForm,
    SignUpForm,
    VehicleForm,
    WindowForm,
)
from parking.services import vehicle_add
from tests.conftest import NOW

pytestmark = pytest.mark.django_db


def window_form(lot, **data) -> WindowForm:
    return WindowForm(
        {"vehicle_type": "car", "start": "2026-03-05T09:00", "end": "2026-03-05T11:30", **data},
        lot=lot,
        vehicle_types=["car"],
    )


class TestLocalDateTimeField:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2026-03-05T09:30", datetime(2026, 3, 5, 9, 30)),
            ("2026-03-05 09:30", datetime(2026, 3, 5, 9, 30)),
            ("2026-03-05T09:30:45", datetime(2026, 3, 5, 9, 30)),
        ],
    )
    def test_reads_a_wall_clock_time_without_a_zone(self, text, expected):
        value = LocalDateTimeField().clean(text)
        assert value == expected
        assert value.tzinfo is None

    @pytest.mark.parametrize(
        "text", ["tomorrow", "2026-13-01T09:00", "0001-01-01T00:00", "2026-03-05T09:00+02:00"]
    )
    def test_refuses_what_is_not_a_plain_local_time(self, text):
        field = LocalDateTimeField()
        with pytest.raises(Exception, match="Enter a date and time"):
            field.clean(text)


class TestWindowForm:
    def test_turns_local_times_at_the_lot_into_utc(self, lot, frozen_now):
        form = window_form(lot)  # Paris in winter: UTC+1
        assert form.is_valid(), form.errors
        assert form.cleaned_data["start_utc"] == datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
        assert form.cleaned_data["end_utc"] == datetime(2026, 3, 5, 10, 30, tzinfo=UTC)

    def test_uses_summer_time_after_the_clocks_change(self, lot, frozen_now):
        form = window_form(lot, start="2026-04-02T09:00", end="2026-04-02T10:00")
        assert form.is_valid(), form.errors
        assert form.cleaned_data["start_utc"] == datetime(2026, 4, 2, 7, 0, tzinfo=UTC)

    def test_a_window_across_the_clock_change_lasts_real_hours(self, lot, frozen_now):
        # 29 March 2026, Paris: 02:00 becomes 03:00; 01:00 → 04:00 is two real hours.
        form = window_form(lot, start="2026-03-29T01:00", end="2026-03-29T04:00")
        assert form.is_valid(), form.errors
        data = form.cleaned_data
        assert (data["end_utc"] - data["start_utc"]).total_seconds() == 2 * 3600

    def test_refuses_a_time_the_clocks_skip(self, lot, frozen_now):
        form = window_form(lot, start="2026-03-29T02:30", end="2026-03-29T05:00")
        assert not form.is_valid()
        assert "does not exist" in form.errors["start"][0]
        assert "Europe/Paris" in form.errors["start"][0]

    def test_a_time_passed_twice_is_refused_until_the_driver_says_which(self, lot, frozen_now):
        # 25 October 2026, Paris: 02:30 happens at 00:30 UTC and again at 01:30 UTC.
        frozen_now.move_to(datetime(2026, 10, 20, 12, 0, tzinfo=UTC))
        form = window_form(lot, start="2026-10-25T02:30", end="2026-10-25T06:00")
        assert not form.is_valid()
        assert "happens twice" in form.errors["start"][0]
        assert [q.choices for q in form.fold_questions] == [((0, "CEST"), (1, "CET"))]

        for fold, utc_hour in (("0", 0), ("1", 1)):
            form = window_form(
                lot, start="2026-10-25T02:30", end="2026-10-25T06:00", start_fold=fold
            )
            assert form.is_valid(), form.errors
            assert form.cleaned_data["start_utc"] == datetime(
                2026, 10, 25, utc_hour, 30, tzinfo=UTC
            )

    @pytest.mark.parametrize(
        ("start", "end", "field", "message"),
        [
            ("2026-03-05T11:00", "2026-03-05T10:00", "end", "Departure must be after arrival."),
            ("2026-03-05T11:00", "2026-03-05T11:15", "end", "at least 30 minutes"),
            ("2026-03-05T11:00", "2026-04-15T11:00", "end", "at most 30 days"),
            ("2026-03-04T08:00", "2026-03-04T12:00", "start", "already passed"),
            ("2026-07-05T11:00", "2026-07-05T12:00", "start", "90 days ahead"),
        ],
    )
    def test_explains_a_bad_window_beside_the_field(
        self, lot, frozen_now, start, end, field, message
    ):
        form = window_form(lot, start=start, end=end)
        assert not form.is_valid()
        assert message in " ".join(form.errors[field])

    def test_offers_only_the_vehicle_types_the_lot_takes(self, lot, frozen_now):
        form = window_form(lot, vehicle_type="van")
        assert not form.is_valid()
        assert "vehicle_type" in form.errors
        assert [value for value, _ in form.fields["vehicle_type"].choices] == ["car"]

    def test_describes_each_input_by_its_help_and_errors(self, lot):
        form = window_form(lot)
        html = str(form["start"])
        assert 'aria-describedby="id_start_helptext id_start_errors"' in html
        assert 'type="datetime-local"' in html


class TestReserveForm:
    def test_puts_the_chosen_vehicles_plate_on_the_booking(self, lot, driver, frozen_now):
        car = vehicle_add(owner=driver, plate="ab-123-cd", vehicle_type="car")
        form = ReserveForm(
            {
                "vehicle_type": "car",
                "start": "2026-03-05T09:00",
                "end": "2026-03-05T11:00",
                "vehicle": str(car.pk),
                "idempotency_key": "k1",
            },
            lot=lot,
            vehicle_types=["car"],
            vehicles=[car],
        )
        assert form.is_valid(), form.errors
        assert form.cleaned_data["vehicle_plate"] == "AB123CD"

    def test_refuses_a_vehicle_of_another_type(self, lot, driver, frozen_now):
        van = vehicle_add(owner=driver, plate="VAN1", vehicle_type="van")
        form = ReserveForm(
            {
                "vehicle_type": "car",
                "start": "2026-03-05T09:00",
                "end": "2026-03-05T11:00",
                "vehicle": str(van.pk),
                "idempotency_key": "k1",
            },
            lot=lot,
            vehicle_types=["car"],
            vehicles=[van],
        )
        assert not form.is_valid()
        assert "VAN1 is a van" in form.errors["vehicle"][0]

    def test_cannot_pick_someone_elses_vehicle(self, lot, driver, frozen_now):
        form = ReserveForm(
            {
                "vehicle_type": "car",
                "start": "2026-03-05T09:00",
                "end": "2026-03-05T11:00",
                "vehicle": "999",
                "idempotency_key": "k1",
            },
            lot=lot,
            vehicle_types=["car"],
            vehicles=[],
        )
        assert not form.is_valid()
        assert "vehicle" in form.errors

    def test_a_new_form_carries_a_fresh_idempotency_key(self, lot):
        first = ReserveForm(lot=lot).initial["idempotency_key"]
        second = ReserveForm(lot=lot).initial["idempotency_key"]
        assert first
        assert second
        assert first != second


def test_search_form_offers_all_cities_and_each_city():
    form = SearchForm(cities=["Paris", "Tokyo"])
    assert form.fields["city"].choices == [
        ("", "All cities"),
        ("Paris", "Paris"),
        ("Tokyo", "Tokyo"),
    ]


def test_search_form_checks_the_shape_of_the_window():
    form = SearchForm(
        {"city": "", "vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T09:00"},
        cities=[],
    )
    assert not form.is_valid()
    assert form.errors["end"] == ["Departure must be after arrival."]


@pytest.mark.parametrize(
    ("plate", "valid", "cleaned"),
    [("ab 12-cd", True, "AB12CD"), (" - ", False, None), ("X" * 17, False, None)],
)
def test_vehicle_form_normalises_the_plate(plate, valid, cleaned):
    form = VehicleForm({"plate": plate, "vehicle_type": "car", "nickname": ""})
    assert form.is_valid() is valid
    if valid:
        assert form.cleaned_data["plate"] == cleaned


@pytest.mark.parametrize(
    ("value", "valid"),
    [("pm_1Nabc", True), ("tok_visa", False), ("pm_<script>", False), ("", False)],
)
def test_pay_form_takes_only_a_payment_method_id(value, valid):
    assert PayForm({"payment_method": value}).is_valid() is valid


def test_sign_up_form_labels_and_autocomplete():
    html = SignUpForm().as_div()
    assert 'autocomplete="email"' in html
    assert 'autocomplete="new-password"' in html
    assert "Your name (optional)" in html


def test_frozen_now_is_the_reference_for_these_tests():
    # The windows above are written against this "now".
    assert datetime(2026, 3, 4, 10, 0, tzinfo=UTC) == NOW
