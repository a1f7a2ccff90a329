"""The e-mails a driver gets besides the pass: a cancellation (what it cost,
what is given back), a reminder before the start (once, however often and
however many sweeps run), and "Add to calendar" (.ics) on the pass."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connections
from django.utils import timezone

from reservations.models import ReservationNotice
from reservations.services import (
    reminders_queue,
    reservation_cancel,
    reservation_complete,
    reservation_confirm,
)
from reservations.tasks import send_reminders
from tests.factories import UserFactory
from tests.reservations.helpers import book

START = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # 10:00 in Paris


def _with_subject(prefix: str) -> list:
    return [m for m in mail.outbox if m.subject.startswith(prefix)]


# --- cancellation ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_paid_booking_before_the_start_says_it_was_free_and_the_hold_released(
    stripe, lot, driver
):
    reservation = book(driver, lot, start=timezone.now() + timedelta(days=1))
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())

    reservation_cancel(reservation_id=reservation.pk)

    [message] = _with_subject("Cancelled:")
    assert message.subject == f"Cancelled: reservation {reservation.code} – {lot.name}"
    assert message.to == [driver.email]
    assert "Cancelling cost:   nothing" in message.body
    assert "€5.00, the hold on your card released" in message.body


@pytest.mark.django_db(transaction=True)
def test_cancelling_after_the_start_says_what_it_cost_and_what_is_given_back(stripe, lot, driver):
    start = timezone.now() - timedelta(minutes=2)
    reservation = book(driver, lot, start=start, hours=30)  # €35.00; a no-show costs €20.00
    reservation_complete(reservation_id=reservation.pk, payment_method_id=stripe.card())

    reservation_cancel(reservation_id=reservation.pk)

    [message] = _with_subject("Cancelled:")
    assert "Cancelling cost:   €20.00" in message.body
    assert "Given back:        €15.00, the rest of the hold on your card released" in message.body


@pytest.mark.django_db
def test_cancelling_an_unpaid_booking_says_nothing_was_charged(
    lot, driver, frozen_now, django_capture_on_commit_callbacks
):
    reservation = book(driver, lot, start=START)
    with django_capture_on_commit_callbacks(execute=True):
        reservation_cancel(reservation_id=reservation.pk)
        reservation_cancel(reservation_id=reservation.pk)  # a repeat sends nothing more

    [message] = _with_subject("Cancelled:")
    assert "nothing (it was not paid for)" in message.body


# --- reminders ---------------------------------------------------------------------------------


@pytest.fixture
def confirmed(driver, lot, frozen_now):
    reservation = book(driver, lot, start=START, hours=2, vehicle_plate="ab-123-cd")
    return reservation_confirm(reservation_id=reservation.pk).reservation


@pytest.mark.django_db
def test_a_reminder_goes_out_an_hour_before_the_start_once(
    confirmed, lot, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://parkspot.example/"
    with django_capture_on_commit_callbacks(execute=True):
        with time_machine.travel(START - timedelta(minutes=61)):
            assert reminders_queue() == 0  # not yet
        with time_machine.travel(START - timedelta(minutes=59)):
            assert send_reminders() == 1
            assert send_reminders() == 0  # the sweep again: nothing more

    [message] = _with_subject("Starts ")
    assert message.subject == (
        f"Starts Thu 5 Mar 2026, 10:00: reservation {confirmed.code} – {lot.name}"
    )
    for expected in (
        confirmed.code,
        lot.name,
        lot.address,
        confirmed.spot.label,
        "AB123CD",
        "Arrive from:       Thu 5 Mar 2026, 09:45",
        f"https://parkspot.example/reservations/{confirmed.code}/",
    ):
        assert expected in message.body, expected


@pytest.mark.django_db
def test_the_reminder_lead_is_a_setting(confirmed, settings):
    settings.REMINDER_LEAD_MINUTES = 12 * 60  # booked 23 hours ahead
    with time_machine.travel(START - timedelta(hours=11)):
        assert reminders_queue() == 1


@pytest.mark.django_db
def test_no_reminder_for_a_cancelled_booking_or_one_made_within_the_lead(driver, lot, frozen_now):
    cancelled = book(driver, lot, start=START)
    reservation_confirm(reservation_id=cancelled.pk)
    reservation_cancel(reservation_id=cancelled.pk)
    with time_machine.travel(START - timedelta(minutes=30)):
        late = book(UserFactory(), lot, start=START)  # the pass has just been sent
        reservation_confirm(reservation_id=late.pk)
        assert reminders_queue() == 0
    assert _with_subject("Starts ") == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_sweeps_running_at_once_send_each_reminder_once(lot):
    start = timezone.now() + timedelta(minutes=30)
    with time_machine.travel(start - timedelta(hours=3), tick=True):
        for _ in range(3):
            reservation = book(UserFactory(), lot, start=start)
            reservation_confirm(reservation_id=reservation.pk)
    barrier = threading.Barrier(4)
    counts: list[int] = []

    def sweep() -> None:
        try:
            barrier.wait()
            counts.append(reminders_queue())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(counts) == 3
    assert ReservationNotice.objects.filter(kind="reminder").count() == 3
    assert len(_with_subject("Starts ")) == 3


# --- add to calendar -----------------------------------------------------------------------------


def _unfold(ics: str) -> list[str]:
    return ics.replace("\r\n ", "").split("\r\n")


@pytest.mark.django_db
def test_the_calendar_file_has_the_window_in_utc_the_address_and_the_code(
    confirmed, lot, client, settings
):
    settings.SITE_URL = "https://parkspot.example/"
    client.force_login(confirmed.user)

    response = client.get(f"/reservations/{confirmed.code}/calendar.ics")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert f'filename="parkspot-{confirmed.code}.ics"' in response["Content-Disposition"]
    ics = response.content.decode()
    assert ics.endswith("\r\n")
    assert all(len(line.encode()) <= 75 for line in ics.split("\r\n"))
    lines = _unfold(ics)
    assert lines[0] == "BEGIN:VCALENDAR"
    assert f"UID:reservation-{confirmed.code}@parkspot.example" in lines
    assert "DTSTART:20260305T090000Z" in lines
    assert "DTEND:20260305T110000Z" in lines
    location = next(line for line in lines if line.startswith("LOCATION:"))
    assert location == f"LOCATION:{lot.name}\\, {lot.address}\\, {lot.city}".replace(";", "\\;")
    description = next(line for line in lines if line.startswith("DESCRIPTION:"))
    assert f"Reservation code {confirmed.code}" in description
    assert "Entry from 09:45 (Europe/Paris)" in description
    assert "show your pass's QR code or say the code" in description
    assert "STATUS:CONFIRMED" in lines
    # The same event each time it is downloaded: calendars update it, not add another.
    assert (
        client.get(f"/reservations/{confirmed.code}/calendar.ics")
        .content.decode()
        .count(f"UID:reservation-{confirmed.code}@parkspot.example")
        == 1
    )
    # and the pass links to it
    assert (
        f"/reservations/{confirmed.code}/calendar.ics"
        in client.get(f"/reservations/{confirmed.code}/").content.decode()
    )


@pytest.mark.django_db
def test_the_calendar_file_is_the_drivers_own(confirmed, client):
    client.force_login(UserFactory())
    assert client.get(f"/reservations/{confirmed.code}/calendar.ics").status_code == 404
    client.logout()
    response = client.get(f"/reservations/{confirmed.code}/calendar.ics")
    assert response.status_code == 302  # to the login page
