"""The reservation pass by e-mail: code, lot, spot, local times, price and a QR code."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core import mail

from config.errors import NotFound
from reservations.emails import QR_CONTENT_ID, send_reservation_pass
from reservations.services import reservation_cancel, reservation_confirm
from tests.reservations.helpers import book

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # 10:00 in Paris


@pytest.fixture
def confirmed(driver, lot, frozen_now):
    reservation = book(driver, lot, start=START, hours=2, vehicle_plate="ab-123-cd")
    return reservation_confirm(reservation_id=reservation.pk).reservation


def test_sends_the_pass_to_the_driver(confirmed, driver, lot, settings):
    settings.SITE_URL = "https://parkspot.example/"
    send_reservation_pass(reservation_id=confirmed.pk)

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [driver.email]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == (
        f"Your parking pass {confirmed.code} – {lot.name}, Thu 5 Mar 2026, 10:00"
    )
    text = message.body
    for expected in (
        confirmed.code,
        lot.name,
        lot.address,
        confirmed.spot.label,
        "AB123CD",
        "Thu 5 Mar 2026, 10:00",  # local time in Paris, not UTC
        "Thu 5 Mar 2026, 12:00",
        "€5.00",
        "(CET, Europe/Paris)",
        f"https://parkspot.example/reservations/{confirmed.code}/",
    ):
        assert expected in text, expected


def test_the_html_version_shows_the_qr_code_inline(confirmed):
    send_reservation_pass(reservation_id=confirmed.pk)
    message = mail.outbox[0]
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f'src="cid:{QR_CONTENT_ID}"' in html
    assert f'alt="QR code of reservation {confirmed.code}"' in html
    assert confirmed.code in html

    raw = message.message()
    assert raw.get_content_type() == "multipart/related"
    images = [part for part in raw.walk() if part.get_content_type() == "image/png"]
    assert len(images) == 1
    image = images[0]
    assert image["Content-ID"] == f"<{QR_CONTENT_ID}>"
    assert image.get_payload(decode=True).startswith(b"\x89PNG\r\n\x1a\n")


def test_the_qr_code_holds_the_reservation_code(confirmed):
    from parking.templatetags.parkspot import qr_code

    code = qr_code(confirmed.code)
    assert not code.is_micro  # phone cameras and gate scanners read full QR codes
    # The code is encoded as is: segno's matrix for the same text is identical.
    import segno

    assert code.matrix == segno.make_qr(confirmed.code, error="m").matrix


def test_no_pass_for_a_reservation_that_cannot_be_used(driver, lot, frozen_now):
    pending = book(driver, lot, start=START)
    send_reservation_pass(reservation_id=pending.pk)
    reservation_cancel(reservation_id=pending.pk)
    send_reservation_pass(reservation_id=pending.pk)
    assert mail.outbox == []


def test_an_unknown_reservation_is_not_found(db):
    with pytest.raises(NotFound):
        send_reservation_pass(reservation_id=404)


def test_yen_prices_have_no_minor_unit(driver, frozen_now):
    from tests.factories import LotFactory, RateFactory, SpotFactory

    tokyo = LotFactory(timezone="Asia/Tokyo", currency="jpy", city="Tokyo")
    RateFactory(lot=tokyo, vehicle_type="car", hourly_amount=600, daily_max_amount=3000)
    SpotFactory(lot=tokyo, vehicle_type="car")
    reservation = book(driver, tokyo, start=START)
    reservation_confirm(reservation_id=reservation.pk)
    send_reservation_pass(reservation_id=reservation.pk)
    body = mail.outbox[0].body
    assert "¥1,200" in body
    assert "Thu 5 Mar 2026, 18:00" in body  # 09:00 UTC in Tokyo
    assert "(JST, Asia/Tokyo)" in body
