"""Flex rates (issue #15): the hourly amount of each started hour is the one in
force at that hour's start (event, else weekly rule, else base), each 24-hour
block still capped. Pure: examples, then properties over any rules and window."""

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from lots.pricing import (
    BASE_LABEL,
    DAILY_MAX,
    EVENT,
    HOURLY,
    WEEKLY,
    FlexRule,
    PriceLine,
    Tariff,
    started_hours,
    window_price,
)

WEEKDAYS = 0b0011111  # Monday to Friday
MONDAY_6_UTC = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 07:00 in Paris


def peak(amount=400, start=8, end=10, weekdays=WEEKDAYS, name="weekday peak", priority=0):
    return FlexRule(WEEKLY, name, amount, priority, weekdays, start * 60, end * 60)


def event(start: datetime, end: datetime, amount=900, name="Fair", priority=0):
    return FlexRule(EVENT, name, amount, priority, 0, 0, 0, start.timestamp(), end.timestamp())


def test_hours_starting_in_a_weekday_peak_cost_the_peak_amount_read_in_the_lots_time_zone():
    tariff = Tariff(250, 5000, "Europe/Paris", (peak(),))
    # 07:00-12:00 in Paris: 07, 10, 11 at the base rate; 08 and 09 at the peak.
    assert tariff.window_price(MONDAY_6_UTC, MONDAY_6_UTC + timedelta(hours=5)) == 3 * 250 + 800
    assert tariff.price_breakdown(MONDAY_6_UTC, MONDAY_6_UTC + timedelta(hours=5)) == (
        PriceLine(HOURLY, 3, 3, 250, BASE_LABEL),
        PriceLine(HOURLY, 2, 2, 400, "weekday peak"),
    )


def test_a_weekly_rule_holds_only_on_its_weekdays():
    saturday = MONDAY_6_UTC + timedelta(days=5)
    tariff = Tariff(250, 5000, "Europe/Paris", (peak(),))
    assert tariff.window_price(saturday, saturday + timedelta(hours=5)) == 5 * 250


def test_an_hour_is_charged_at_the_amount_in_force_at_its_start():
    # 07:30-09:30 Paris: hours start 07:30 (base), 08:30 (peak).
    start = MONDAY_6_UTC + timedelta(minutes=30)
    tariff = Tariff(250, 5000, "Europe/Paris", (peak(),))
    assert tariff.window_price(start, start + timedelta(hours=2)) == 250 + 400


def test_an_event_beats_a_weekly_rule_and_a_higher_priority_beats_a_lower_one():
    fair = event(MONDAY_6_UTC, MONDAY_6_UTC + timedelta(hours=3))
    tariff = Tariff(250, 50_000, "Europe/Paris", (peak(amount=400, priority=9), fair))
    assert [
        name for _, name in tariff.hour_amounts(MONDAY_6_UTC, MONDAY_6_UTC + timedelta(hours=4))
    ] == [
        "Fair",
        "Fair",
        "Fair",
        "",
    ]
    cheap = peak(amount=300, name="cheap", priority=1)
    dear = peak(amount=600, name="dear", priority=0)
    tariff = Tariff(250, 50_000, "Europe/Paris", (dear, cheap))
    at_peak = MONDAY_6_UTC + timedelta(hours=1)
    assert tariff.window_price(at_peak, at_peak + timedelta(hours=1)) == 300


def test_a_midnight_end_covers_the_last_hour_of_the_day():
    night = FlexRule(WEEKLY, "late", 100, 0, 0b1111111, 22 * 60, 24 * 60)
    start = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 23:00 in Paris
    tariff = Tariff(250, 5000, "Europe/Paris", (night,))
    assert tariff.window_price(start, start + timedelta(hours=2)) == 100 + 250


def test_hours_are_real_hours_across_the_clocks_going_forward():
    # Paris, 29 March 2026: 02:00 becomes 03:00. 00:00-04:00 local is 3 real hours,
    # starting at 00:00, 01:00 and 03:00 local: only the last is in a 03:00-04:00 rule.
    start = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    rule = FlexRule(WEEKLY, "early", 700, 0, 0b1111111, 3 * 60, 4 * 60)
    tariff = Tariff(250, 5000, "Europe/Paris", (rule,))
    end = datetime(2026, 3, 29, 2, 0, tzinfo=UTC)
    assert started_hours(start, end) == 3
    assert tariff.window_price(start, end) == 250 + 250 + 700


def test_each_24_hour_block_is_still_capped_at_the_daily_maximum():
    tariff = Tariff(250, 2000, "Europe/Paris", (peak(amount=1500),))
    # 51 hours from Monday 07:00: two capped days, then 3 hours (07, 08, 09 on Wednesday).
    end = MONDAY_6_UTC + timedelta(hours=51)
    assert tariff.window_price(MONDAY_6_UTC, end) == 2 * 2000 + min(250 + 2 * 1500, 2000)
    assert tariff.price_breakdown(MONDAY_6_UTC, end) == (PriceLine(DAILY_MAX, 51, 3, 2000),)


def test_the_no_show_charge_is_the_tariff_price_of_the_first_24_hours():
    tariff = Tariff(250, 20_000, "Europe/Paris", (peak(),))
    end = MONDAY_6_UTC + timedelta(days=3)
    assert tariff.no_show_charge(MONDAY_6_UTC, end) == 22 * 250 + 2 * 400


def test_rules_round_trip_through_json_lists():
    rule = peak()
    assert Tariff(250, 2000, "UTC", (list(rule),)).rules == (rule,)


# --- properties --------------------------------------------------------------------------

START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)  # 30 days from here cross Europe's and America's DST
zones = st.sampled_from(
    ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
)
rates = st.tuples(st.integers(1, 10_000), st.integers(0, 300_000)).map(
    lambda pair: (pair[0], pair[0] + pair[1])  # daily max >= hourly, as the DB demands
)


@st.composite
def weekly_rules(draw):
    start = draw(st.integers(0, 1439))
    end = draw(st.integers(start + 1, 1440))
    return FlexRule(
        WEEKLY,
        draw(st.sampled_from(["peak", "night", "weekend"])),
        draw(st.integers(1, 20_000)),
        draw(st.integers(0, 3)),
        draw(st.integers(1, 127)),
        start,
        end,
    )


@st.composite
def event_rules(draw):
    begins = START + timedelta(minutes=draw(st.integers(-3 * 24 * 60, 35 * 24 * 60)))
    ends = begins + timedelta(minutes=draw(st.integers(1, 10 * 24 * 60)))
    return event(
        begins, ends, amount=draw(st.integers(1, 20_000)), priority=draw(st.integers(0, 3))
    )


rule_sets = st.lists(st.one_of(weekly_rules(), event_rules()), max_size=5)
offsets = st.integers(min_value=0, max_value=7 * 24 * 3600)
durations = st.integers(min_value=1, max_value=30 * 24 * 3600)


def tariff_of(rate, zone, rules) -> Tariff:
    return Tariff(rate[0], rate[1], zone, tuple(rules))


@given(rates, zones, offsets, durations)
def test_without_rules_a_tariff_prices_exactly_as_the_base_rate_did(rate, zone, offset, seconds):
    start = START + timedelta(seconds=offset)
    end = start + timedelta(seconds=seconds)
    assert tariff_of(rate, zone, ()).window_price(start, end) == window_price(
        start, end, hourly=rate[0], daily_max=rate[1]
    )


@given(rates, zones, rule_sets, offsets, durations, durations)
def test_the_price_never_decreases_as_the_end_moves_later(rate, zone, rules, offset, short, extra):
    tariff = tariff_of(rate, zone, rules)
    start = START + timedelta(seconds=offset)
    assert tariff.window_price(start, start + timedelta(seconds=short + extra)) >= (
        tariff.window_price(start, start + timedelta(seconds=short))
    )


@given(rates, zones, rule_sets, offsets, durations)
def test_no_24_hour_block_costs_more_than_the_daily_maximum(rate, zone, rules, offset, seconds):
    start = START + timedelta(seconds=offset)
    end = start + timedelta(seconds=seconds)
    blocks = -(-seconds // (24 * 3600))
    assert tariff_of(rate, zone, rules).window_price(start, end) <= blocks * rate[1]


@given(rates, zones, rule_sets, offsets, durations)
def test_the_breakdown_sums_to_the_price_and_covers_every_started_hour(
    rate, zone, rules, offset, seconds
):
    tariff = tariff_of(rate, zone, rules)
    start = START + timedelta(seconds=offset)
    end = start + timedelta(seconds=seconds)
    lines = tariff.price_breakdown(start, end)
    assert sum(line.amount for line in lines) == tariff.window_price(start, end)
    assert sum(line.hours for line in lines) == started_hours(start, end)
    assert all(line.quantity > 0 and line.kind in (HOURLY, DAILY_MAX) for line in lines)


@given(rates, zones, rule_sets, offsets, durations, st.integers(1, 20_000), st.booleans())
def test_an_event_that_does_not_overlap_the_window_changes_nothing(
    rate, zone, rules, offset, seconds, amount, before
):
    start = START + timedelta(seconds=offset)
    end = start + timedelta(seconds=seconds)
    charged_until = start + started_hours(start, end) * timedelta(hours=1)
    outside = (
        event(start - timedelta(days=2), start, amount)
        if before
        else event(charged_until, charged_until + timedelta(days=2), amount)
    )
    tariff = tariff_of(rate, zone, rules)
    with_event = tariff_of(rate, zone, [*rules, outside])
    assert with_event.window_price(start, end) == tariff.window_price(start, end)
    assert with_event.price_breakdown(start, end) == tariff.price_breakdown(start, end)


@given(rates, zones, rule_sets, offsets, durations)
def test_the_no_show_charge_never_exceeds_the_price_nor_a_day(rate, zone, rules, offset, seconds):
    tariff = tariff_of(rate, zone, rules)
    start = START + timedelta(seconds=offset)
    end = start + timedelta(seconds=seconds)
    charge = tariff.no_show_charge(start, end)
    assert 0 < charge <= tariff.window_price(start, end)
    assert charge <= rate[1]
