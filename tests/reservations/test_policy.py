"""What a booking costs (reservations/policy.py): pure rules, checked on examples
and as properties over any window, rate and moment."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservations import policy

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
TARIFF = policy.Tariff(hourly=300, daily_max=2400)


def booking(days: float = 30, grace_minutes: int = 60, tariff=TARIFF) -> policy.Booking:
    return policy.Booking(
        start=START,
        end=START + timedelta(days=days),
        tariff=tariff,
        grace=timedelta(minutes=grace_minutes),
    )


def cancel(b: policy.Booking, at: datetime, late_policy: str = "charge", paid=True) -> int:
    return policy.cancellation_charge(b, at, paid=paid, late_policy=late_policy)


def test_cancelling_a_month_a_minute_after_its_start_costs_a_no_show_not_the_month():
    month = booking(days=30)
    assert month.price == 30 * 2400
    assert cancel(month, START + timedelta(minutes=1)) == policy.no_show_charge(month) == 2400


def test_cancelling_before_the_start_or_an_unpaid_hold_is_free():
    month = booking()
    assert cancel(month, START - timedelta(seconds=1)) == 0
    assert cancel(month, START + timedelta(days=2), paid=False) == 0


def test_the_refund_policy_is_free_only_until_the_grace_ends():
    month = booking(grace_minutes=60)
    assert cancel(month, START + timedelta(minutes=59), "refund") == 0
    # From start + grace the driver would be a no-show: cancelling cannot dodge it.
    assert cancel(month, START + timedelta(minutes=60), "refund") == 2400
    assert policy.free_cancellation_until(month, late_policy="refund") == START + timedelta(
        minutes=60
    )
    assert policy.free_cancellation_until(month, late_policy="charge") == START


def test_the_elapsed_policy_charges_the_hours_since_the_start_at_least_one():
    month = booking(grace_minutes=180)
    assert cancel(month, START, "elapsed") == 300
    assert cancel(month, START + timedelta(minutes=61), "elapsed") == 600
    assert cancel(month, START + timedelta(minutes=59), "elapsed") == 300


def test_an_unknown_policy_is_refused_not_read_as_refund():
    with pytest.raises(ValueError, match="late cancellation policy"):
        cancel(booking(), START + timedelta(minutes=5), "refnud")


def test_an_overstay_costs_each_started_hour_at_the_booked_rate():
    two_hours = booking(days=2 / 24)
    assert policy.overstay_charge(two_hours, two_hours.end) == 0
    assert policy.overstay_charge(two_hours, two_hours.end + timedelta(minutes=61)) == 600
    assert policy.completion_charge(two_hours) == 600


def test_long_bookings_are_charged_at_once_short_ones_held():
    hold = timedelta(days=6)
    assert policy.charged_at_once(booking(days=7), START, card_hold_max=hold)
    assert not policy.charged_at_once(booking(days=1), START, card_hold_max=hold)


rates = st.tuples(st.integers(1, 10_000), st.integers(0, 300_000)).map(
    lambda pair: policy.Tariff(hourly=pair[0], daily_max=pair[0] + pair[1])
)
bookings = st.builds(
    lambda minutes, grace, tariff: policy.Booking(
        start=START,
        end=START + timedelta(minutes=minutes),
        tariff=tariff,
        grace=timedelta(minutes=grace),
    ),
    st.integers(30, 30 * 24 * 60),
    st.integers(0, 24 * 60),
    rates,
)
moments = st.integers(-3 * 24 * 60, 40 * 24 * 60).map(lambda m: START + timedelta(minutes=m))


@given(bookings, moments, st.sampled_from(policy.LATE_CANCEL_POLICIES))
def test_a_cancellation_never_costs_more_than_a_no_show_or_the_price(b, at, late_policy):
    charge = cancel(b, at, late_policy)
    assert 0 <= charge <= policy.no_show_charge(b) <= b.price
    if at < policy.free_cancellation_until(b, late_policy=late_policy):
        assert charge == 0
    if at >= b.no_show_after:
        assert charge == policy.no_show_charge(b)  # never cheaper than not showing up


@given(bookings, moments, moments, st.sampled_from(policy.LATE_CANCEL_POLICIES))
def test_cancelling_later_never_costs_less(b, one, other, late_policy):
    early, late = sorted((one, other))
    assert cancel(b, early, late_policy) <= cancel(b, late, late_policy)


@given(bookings, st.integers(0, 10 * 24 * 60))
def test_staying_longer_never_costs_less(b, minutes):
    later = b.end + timedelta(minutes=minutes)
    assert policy.overstay_charge(b, later) <= policy.overstay_charge(
        b, later + timedelta(minutes=1)
    )


def test_an_extension_costs_the_longer_windows_price_less_the_booked_one():
    two_hours = booking(days=2 / 24)
    assert policy.extension_charge(two_hours, two_hours.end + timedelta(hours=1)) == 300
    # The daily maximum caps the longer window, not each extension on its own.
    assert policy.extension_charge(two_hours, START + timedelta(hours=30)) == 2400 + 6 * 300 - 600
    # Minutes inside an hour already started cost nothing more.
    ninety = booking(days=1.5 / 24)
    assert policy.extension_charge(ninety, START + timedelta(hours=2)) == 0
    assert policy.extension_charge(ninety, ninety.end) == 0


@given(
    hours=st.integers(min_value=1, max_value=24 * 40),
    first=st.integers(min_value=1, max_value=24 * 10 * 60),
    second=st.integers(min_value=1, max_value=24 * 10 * 60),
    hourly=st.integers(min_value=0, max_value=5000),
    daily_max=st.integers(min_value=0, max_value=50000),
)
def test_extensions_in_steps_cost_what_one_booking_of_the_whole_window_would(
    hours, first, second, hourly, daily_max
):
    tariff = policy.Tariff(hourly=hourly, daily_max=daily_max)
    b = policy.Booking(
        start=START, end=START + timedelta(hours=hours), tariff=tariff, grace=timedelta(0)
    )
    once = policy.extended(b, b.end + timedelta(minutes=first))
    twice = policy.extended(once, once.end + timedelta(minutes=second))
    step1 = policy.extension_charge(b, once.end)
    step2 = policy.extension_charge(once, twice.end)
    assert step1 >= 0
    assert step2 >= 0
    # Every cent of the longer window is paid exactly once, however it was reached.
    assert b.price + step1 + step2 == twice.price
