"""Staff keep their lots' flex rates in the admin (issue #15): rate rules with
their times in the lot's clock, a price preview of a window with the rules as
saved and with the rule being edited (saving nothing), only for their lots."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from lots.models import Lot, RateRule
from lots.services import rate_rule_save
from tests.lots import test_staff_scoping as scoping
from tests.lots.test_staff_scoping import admin_url

pytestmark = pytest.mark.django_db

# Lot A (Paris, 3.00 EUR/h, 20.00 a day) with a staff member, lot B (Tokyo), a superuser.
world, staff_a, boss = scoping.world, scoping.staff_a, scoping.boss


def rule_form(lot: Lot, **changes) -> dict:
    """A weekday peak: Monday to Friday 12:00-14:00 at 4.00 an hour, for every type."""
    data = {
        "lot": lot.pk,
        "name": "weekday peak",
        "vehicle_type": "",
        "kind": "weekly",
        "weekdays": ["0", "1", "2", "3", "4"],
        "start_time": "12:00",
        "end_time": "14:00",
        "event_starts": "",
        "event_ends": "",
        "hourly_amount": "400",
        "priority": "0",
        "is_active": "on",
        "preview_vehicle_type": "car",
        "preview_start": "",
        "preview_end": "",
    }
    data.update(changes)
    return data


# Monday 9 March 2026, 11:00-15:00 in Paris: 11 and 14 at the base (3.00), 12 and 13 at the peak.
WINDOW = {"preview_start": "2026-03-09T11:00", "preview_end": "2026-03-09T15:00"}


def test_staff_add_a_weekday_peak_and_the_lot_s_availability_version_moves(world, staff_a):
    lot = world["a"]
    version = Lot.objects.get(pk=lot.pk).availability_version
    response = staff_a.post(admin_url(RateRule, "add"), rule_form(lot))
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = RateRule.objects.get(lot=lot, name="weekday peak")
    assert (rule.weekday_list, rule.start_time, rule.end_time) == (
        [0, 1, 2, 3, 4],
        time(12),
        time(14),
    )
    assert Lot.objects.get(pk=lot.pk).availability_version > version


def test_the_preview_shows_the_price_as_saved_and_with_the_unsaved_rule_line_by_line(
    world, staff_a
):
    lot = world["a"]
    response = staff_a.post(
        admin_url(RateRule, "add"), {**rule_form(lot), **WINDOW, "_preview": "1"}
    )
    assert response.status_code == 200
    preview = response.context["preview"]
    assert (preview.saved_price, preview.draft_price) == (4 * 300, 2 * 300 + 2 * 400)
    html = response.content.decode()
    assert "2 h × €3.00 (base rate)" in html
    assert "2 h × €4.00 (weekday peak)" in html
    assert "€12.00" in html
    assert "€14.00" in html
    assert not RateRule.objects.filter(name="weekday peak").exists()  # nothing saved


def test_editing_a_rule_previews_it_in_place_of_its_saved_version(world, staff_a):
    lot = world["a"]
    rule = rate_rule_save(
        rule=RateRule(
            lot=lot,
            name="weekday peak",
            weekdays=0b11111,
            start_time=time(12),
            end_time=time(14),
            hourly_amount=400,
        )
    )
    data = {**rule_form(lot, hourly_amount="500"), **WINDOW, "_preview": "1"}
    del data["lot"]  # read-only once the rule exists
    response = staff_a.post(admin_url(RateRule, "change", rule.pk), data)
    assert response.status_code == 200
    preview = response.context["preview"]
    assert (preview.saved_price, preview.draft_price) == (2 * 300 + 2 * 400, 2 * 300 + 2 * 500)
    rule.refresh_from_db()
    assert rule.hourly_amount == 400


def test_event_times_are_read_in_the_lot_s_clock(world, staff_a):
    lot = world["a"]
    response = staff_a.post(
        admin_url(RateRule, "add"),
        rule_form(
            lot,
            name="Salon",
            kind="event",
            weekdays=[],
            start_time="",
            end_time="",
            event_starts="2026-06-01T09:00",
            event_ends="2026-06-01T18:00",
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = RateRule.objects.get(name="Salon")
    assert rule.starts_at == datetime(2026, 6, 1, 7, 0, tzinfo=UTC)  # 09:00 in Paris, summer
    assert (rule.weekdays, rule.start_time) == (0, None)


def test_a_weekly_rule_that_ends_before_it_starts_is_refused_on_the_form(world, staff_a):
    response = staff_a.post(admin_url(RateRule, "add"), rule_form(world["a"], end_time="11:00"))
    assert response.status_code == 200
    assert "end_time" in response.context["adminform"].form.errors
    assert not RateRule.objects.filter(name="weekday peak").exists()


def test_another_lot_s_rules_and_their_preview_are_not_found(world, staff_a, boss):
    theirs = world["b"].rate_rules.get()
    data = {**rule_form(world["b"]), **WINDOW, "_preview": "1"}
    del data["lot"]
    assert staff_a.post(admin_url(RateRule, "change", theirs.pk), data).status_code == 404
    assert staff_a.get(admin_url(RateRule, "change", theirs.pk)).status_code == 404
    # Nor can their lot be picked to preview or save a rule.
    response = staff_a.post(
        admin_url(RateRule, "add"), {**rule_form(world["b"]), **WINDOW, "_preview": "1"}
    )
    assert response.status_code == 200
    assert "lot" in response.context["adminform"].form.errors
    assert response.context["preview"] is None
    assert boss.post(admin_url(RateRule, "change", theirs.pk), data).status_code == 200
