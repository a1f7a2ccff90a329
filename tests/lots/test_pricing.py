"""Prices of windows (DESIGN §4 Money): per started hour, each 24 h capped."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lots.pricing import (
    DAILY_MAX,
    HOURLY,
    PriceLine,
    no_show_charge,
    price_breakdown,
    started_hours,
    window_price,
)

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def test_each_started_hour_is_charged():
    assert window_price(START, START + timedelta(minutes=30), hourly=250, daily_max=2000) == 250
    assert window_price(START, START + timedelta(hours=1), hourly=250, daily_max=2000) == 250
    assert (
        window_price(START, START + timedelta(hours=1, seconds=1), hourly=250, daily_max=2000)
        == 500
    )


def test_a_day_costs_at_most_the_daily_maximum():
    assert window_price(START, START + timedelta(hours=10), hourly=250, daily_max=2000) == 2000
    assert window_price(START, START + timedelta(hours=24), hourly=250, daily_max=2000) == 2000


def test_days_are_capped_block_by_block():
    # 2 full days capped, then 3 hours at the hourly rate.
    price = window_price(START, START + timedelta(hours=51), hourly=250, daily_max=2000)
    assert price == 2 * 2000 + 3 * 250


def test_no_show_pays_the_first_24_hours_only():
    assert no_show_charge(START, START + timedelta(days=5), hourly=250, daily_max=2000) == 2000
    assert no_show_charge(START, START + timedelta(hours=3), hourly=250, daily_max=2000) == 750


rates = st.tuples(st.integers(1, 10_000), st.integers(0, 300_000)).map(
    lambda pair: (pair[0], pair[0] + pair[1])  # daily max >= hourly, as the DB demands
)
durations = st.integers(min_value=1, max_value=30 * 24 * 3600)


@given(rates, durations, durations)
def test_price_never_decreases_as_the_window_grows(rate, shorter, extra):
    hourly, daily_max = rate
    short = window_price(
        START, START + timedelta(seconds=shorter), hourly=hourly, daily_max=daily_max
    )
    long = window_price(
        START, START + timedelta(seconds=shorter + extra), hourly=hourly, daily_max=daily_max
    )
    assert long >= short


@given(rates, durations)
def test_no_24_hour_block_costs_more_than_the_daily_maximum(rate, seconds):
    hourly, daily_max = rate
    end = START + timedelta(seconds=seconds)
    blocks = -(-seconds // (24 * 3600))
    assert window_price(START, end, hourly=hourly, daily_max=daily_max) <= blocks * daily_max
    assert window_price(START, end, hourly=hourly, daily_max=daily_max) <= (
        started_hours(START, end) * hourly
    )


@given(rates, durations)
def test_no_show_charge_never_exceeds_the_price(rate, seconds):
    hourly, daily_max = rate
    end = START + timedelta(seconds=seconds)
    charge = no_show_charge(START, end, hourly=hourly, daily_max=daily_max)
    assert 0 < charge <= window_price(START, end, hourly=hourly, daily_max=daily_max)
    assert charge <= daily_max


def test_a_short_stay_breaks_down_as_hours_times_the_rate():
    lines = price_breakdown(
        START, START + timedelta(hours=2, minutes=10), hourly=250, daily_max=2000
    )
    assert lines == (PriceLine(kind=HOURLY, hours=3, quantity=3, unit_amount=250),)
    assert lines[0].amount == 750


def test_capped_days_and_the_hours_after_them_are_separate_lines():
    lines = price_breakdown(START, START + timedelta(hours=51), hourly=250, daily_max=2000)
    assert lines == (
        PriceLine(kind=DAILY_MAX, hours=48, quantity=2, unit_amount=2000),
        PriceLine(kind=HOURLY, hours=3, quantity=3, unit_amount=250),
    )


def test_a_long_last_block_is_capped_with_the_days_before_it():
    lines = price_breakdown(START, START + timedelta(hours=34), hourly=250, daily_max=2000)
    assert lines == (PriceLine(kind=DAILY_MAX, hours=34, quantity=2, unit_amount=2000),)


@given(rates, durations)
def test_the_breakdown_sums_to_the_price_and_covers_every_started_hour(rate, seconds):
    hourly, daily_max = rate
    end = START + timedelta(seconds=seconds)
    lines = price_breakdown(START, end, hourly=hourly, daily_max=daily_max)
    assert sum(line.amount for line in lines) == window_price(
        START, end, hourly=hourly, daily_max=daily_max
    )
    assert sum(line.hours for line in lines) == started_hours(START, end)
    assert all(line.quantity > 0 and line.kind in (HOURLY, DAILY_MAX) for line in lines)
