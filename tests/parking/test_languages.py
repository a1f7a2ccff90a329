"""The website and the e-mails in English and French: the browser's language
(Accept-Language), the switcher (a cookie), dates and money written the way each
language writes them, e-mails in the driver's stored language; the API stays English."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import translation

from config.money import format_money
from lots.pricing import price_breakdown
from parking.models import User
from parking.templatetags.lot_facts import distance, height
from parking.templatetags.parkspot import format_date_time, format_duration, price_line
from reservations.models import Reservation
from reservations.services import reservation_cancel, reservation_confirm
from reservations.tasks import send_reminders
from tests.factories import UserFactory
from tests.parking.signup_links import open_account
from tests.reservations.helpers import book

START = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)  # Thursday, 10:00 in Paris
NBSP = "\u00a0"
FR = {"HTTP_ACCEPT_LANGUAGE": "fr-FR,fr;q=0.9,en;q=0.5"}


def text_of(response) -> str:
    """What a person reads: the page without its tags, spaces collapsed."""
    html = response.content.decode()
    return " ".join(re.sub(r"<[^>]+>", " ", html).replace(NBSP, " ").split())


def html_lang(response) -> str:
    return re.search(r'<html lang="([^"]+)"', response.content.decode()).group(1)


# --- how each language writes money, dates and lengths ------------------------------------------


class TestFormats:
    def test_money_in_english_puts_the_symbol_first_with_a_point(self):
        with translation.override("en"):
            assert format_money(1250, "eur") == "€12.50"
            assert format_money(120000, "jpy") == "¥120,000"
            assert format_money(-500, "usd") == "\u2212$5.00"

    def test_money_in_french_puts_the_symbol_after_with_a_comma(self):
        with translation.override("fr"):
            assert format_money(1250, "eur") == f"12,50{NBSP}€"
            assert format_money(123456789, "eur") == f"1\u202f234\u202f567,89{NBSP}€"
            assert format_money(120000, "jpy") == f"120\u202f000{NBSP}¥"
            assert format_money(500, "usd") == f"5,00{NBSP}${NBSP}US"
            assert format_money(1250, "xyz") == f"12,50{NBSP}XYZ"

    def test_dates_and_times_per_language(self):
        moment = datetime(2026, 12, 1, 6, 0)
        with translation.override("en"):
            assert format_date_time(moment) == "Tue 1 Dec 2026, 06:00"
        with translation.override("fr"):
            assert format_date_time(moment) == "mar. 1 déc. 2026, 06:00"
            assert format_date_time(datetime(2026, 8, 9, 17, 5)) == "dim. 9 août 2026, 17:05"
            assert format_date_time(moment, with_date=False) == "06:00"

    def test_lengths_prices_and_distances_per_language(self):
        [line] = price_breakdown(START, START + timedelta(hours=48), hourly=250, daily_max=2000)
        with translation.override("fr"):
            assert format_duration(timedelta(days=2, hours=3)) == "2 jours 3 h"
            assert format_duration(timedelta(days=1)) == "1 jour"
            assert height(190) == "1,90 m"
            assert distance(1250) == "1,2 km"
            assert "au plafond journalier" in price_line(line, "eur")
            assert f"20,00{NBSP}€" in price_line(line, "eur")
        with translation.override("en"):
            assert format_duration(timedelta(days=2, hours=3)) == "2 days 3 h"
            assert height(190) == "1.90 m"
            assert "at the daily maximum" in price_line(line, "eur")


# --- pages: the browser's language, and the switcher --------------------------------------------


@pytest.mark.django_db
class TestPages:
    def test_a_browser_asking_nothing_gets_english(self, client, lot):
        response = client.get("/")
        assert html_lang(response) == "en"
        assert "Reserve a parking spot" in text_of(response)

    def test_a_french_browser_gets_the_home_page_in_french(self, client, lot):
        response = client.get("/", **FR)
        page = text_of(response)
        assert html_lang(response) == "fr"
        assert response["Content-Language"] == "fr"
        assert "Réservez une place de parking" in page
        assert "Comment ça marche" in page
        assert "à partir de 2,50 € /heure" in page
        assert "Reserve a parking spot" not in page

    def test_search_results_in_french_with_french_dates_and_prices(self, client, lot, frozen_now):
        response = client.get(
            "/search/",
            {"vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T12:00"},
            **FR,
        )
        page = text_of(response)
        assert response.status_code == 200
        assert "1 parking avec une place voiture libre" in page
        assert "jeu. 5 mars 2026, 10:00 – 12:00" in page
        assert "5,00 €" in page
        assert "3 places libres" in page

    def test_the_lot_page_in_french_quotes_the_price_and_the_terms(self, client, lot, frozen_now):
        response = client.get(
            f"/lots/{lot.slug}/",
            {"vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T12:00"},
            **FR,
        )
        page = text_of(response)
        assert "Tarifs" in page
        assert "Réserver une place" in page
        assert "5,00 € pour 2 h" in page
        assert "Annulation gratuite jusqu’au" not in page  # a sentence of the pass, not here
        assert "Gratuite jusqu’au jeu. 5 mars 2026, 10:00 CET." in page
        assert "S’inscrire pour réserver" in page

    def test_the_pay_page_in_french(self, client, driver, lot, frozen_now):
        reservation = book(driver, lot, start=START)
        client.force_login(driver)
        page = text_of(client.get(f"/reservations/{reservation.code}/pay/", **FR))
        assert "Payer et confirmer" in page
        assert f"Réservation {reservation.code} à {lot.name}" in page
        assert "Arrivée jeu. 5 mars 2026, 10:00" in page
        assert "Prix 5,00 €" in page

    def test_the_switcher_changes_the_language_and_it_sticks(self, client, lot):
        response = client.post("/language/", {"language": "fr", "next": "/search/"})
        assert response.status_code == 302
        assert response["Location"] == "/search/"
        assert client.cookies["django_language"].value == "fr"
        # The cookie wins over the browser's own language, page after page.
        english_browser = {"HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}
        assert html_lang(client.get("/search/", **english_browser)) == "fr"
        assert "Trouver un parking" in text_of(client.get("/", **english_browser))

        client.post("/language/", {"language": "en", "next": "/"})
        assert html_lang(client.get("/", **FR)) == "en"

    def test_the_switcher_offers_the_other_language_named_in_itself(self, client, lot):
        html = client.get("/", **FR).content.decode()
        assert '<button type="submit" name="language" value="en"' in html
        assert 'lang="en">English</button>' in html
        assert 'aria-current="true">Français</span>' in html

    def test_the_switcher_refuses_an_unknown_language(self, client, lot):
        client.post("/language/", {"language": "xx", "next": "/"})
        assert "django_language" not in client.cookies
        assert html_lang(client.get("/")) == "en"

    def test_a_signed_in_drivers_choice_is_kept_for_their_e_mails(self, client, driver, lot):
        client.force_login(driver)
        client.post("/language/", {"language": "fr", "next": "/"})
        driver.refresh_from_db()
        assert driver.language == "fr"

    def test_booking_in_french_makes_the_drivers_e_mails_french(
        self, client, driver, lot, frozen_now
    ):
        client.force_login(driver)
        response = client.post(
            f"/lots/{lot.slug}/reserve/",
            {"vehicle_type": "car", "start": "2026-03-05T10:00", "end": "2026-03-05T12:00"},
            **FR,
        )
        assert response.status_code == 302
        driver.refresh_from_db()
        assert driver.language == "fr"

    def test_messages_and_form_errors_in_french(self, client, driver, lot, frozen_now):
        client.force_login(driver)
        response = client.post(
            f"/lots/{lot.slug}/reserve/",
            {"vehicle_type": "car", "start": "2026-03-05T12:00", "end": "2026-03-05T10:00"},
            **FR,
        )
        assert "Le départ doit être après l’arrivée." in text_of(response)
        reservation = book(driver, lot, start=START)
        response = client.post(f"/reservations/{reservation.code}/cancel/", follow=True, **FR)
        assert f"La réservation {reservation.code} est annulée." in text_of(response)

    def test_the_not_found_page_in_french(self, client, lot):
        response = client.get("/no-such-page/", **FR)
        assert response.status_code == 404
        assert "Nous ne trouvons pas cette page" in text_of(response)


# --- the API stays English -----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_answers_in_english_whatever_the_browser_or_the_last_page(client, api, lot):
    client.get("/", **FR)  # a French page first, on the same thread
    response = api.get(
        f"/api/v1/lots/{lot.slug}/availability",
        {"vehicle_type": "car", "start": "soon", "end": "later"},
        **FR,
    )
    assert response.status_code == 400
    assert "Content-Language" not in response
    assert "Accept-Language" not in response.get("Vary", "")
    assert translation.get_language() == "en"
    detail = response.json()["detail"]
    assert detail.isascii(), detail


# --- e-mails in the driver's language ------------------------------------------------------------


@pytest.fixture
def french_driver(db):
    return UserFactory(language="fr", full_name="Camille Martin")


@pytest.mark.django_db
def test_the_reminder_is_in_french_for_a_french_driver_and_english_for_others(
    french_driver, driver, lot, frozen_now, django_capture_on_commit_callbacks
):
    french = reservation_confirm(
        reservation_id=book(french_driver, lot, start=START).pk
    ).reservation
    english = reservation_confirm(reservation_id=book(driver, lot, start=START).pk).reservation
    with (
        django_capture_on_commit_callbacks(execute=True),
        time_machine.travel(START - timedelta(minutes=59)),
    ):
        assert send_reminders() == 2

    [to_french] = [m for m in mail.outbox if m.to == [french_driver.email]]
    assert to_french.subject == (
        f"Début le jeu. 5 mars 2026, 10:00{NBSP}: réservation {french.code} – {lot.name}"
    )
    assert to_french.body.startswith("Bonjour Camille,")
    assert f"Arrivée dès{NBSP}:      jeu. 5 mars 2026, 09:45" in to_french.body
    assert "la réservation compte comme une non-présentation et coûte" in to_french.body
    assert f"5,00{NBSP}€." in to_french.body  # the no-show charge (the whole 2 hours)

    [to_english] = [m for m in mail.outbox if m.to == [driver.email]]
    assert to_english.subject.startswith("Starts Thu 5 Mar 2026, 10:00: reservation ")
    assert "Arrive from:       Thu 5 Mar 2026, 09:45" in to_english.body
    assert english.code in to_english.body


@pytest.mark.django_db
def test_the_cancellation_e_mail_is_in_the_drivers_language(
    french_driver, lot, frozen_now, django_capture_on_commit_callbacks
):
    reservation = book(french_driver, lot, start=START)
    with (
        translation.override("en"),  # whatever the worker's own language
        django_capture_on_commit_callbacks(execute=True),
    ):
        reservation_cancel(reservation_id=reservation.pk)

    [message] = mail.outbox
    assert message.subject == f"Annulée{NBSP}: réservation {reservation.code} – {lot.name}"
    assert f"votre réservation {reservation.code} est annulée" in message.body
    assert "rien (elle n’était pas payée)" in message.body
    assert "du jeu. 5 mars 2026, 10:00 au jeu. 5 mars 2026, 12:00" in message.body


@pytest.mark.django_db
def test_the_pass_e_mail_is_in_the_drivers_language(
    french_driver, lot, frozen_now, django_capture_on_commit_callbacks
):
    reservation = book(french_driver, lot, start=START)
    with django_capture_on_commit_callbacks(execute=True):
        reservation_confirm(reservation_id=reservation.pk)

    [message] = [m for m in mail.outbox if reservation.code in m.subject]
    assert message.subject.startswith(f"Votre pass de stationnement {reservation.code}")
    assert "votre place de parking est réservée" in message.body
    assert f"Prix{NBSP}:             5,00{NBSP}€" in message.body
    html, _ = message.alternatives[0]
    assert '<html lang="fr">' in html
    assert "Ce que vous avez accepté" in html


@pytest.mark.django_db
def test_signing_up_in_french_sends_the_link_in_french_and_keeps_the_language(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/",
            {"email": "camille@example.com", "password": "un mot de passe sûr"},
            **FR,
        )
    [message] = mail.outbox
    assert message.subject == "Confirmez votre compte ParkSpot"
    assert "Pour l’ouvrir et vous connecter, suivez ce lien" in message.body
    open_account("camille@example.com")
    assert User.objects.get(email="camille@example.com").language == "fr"
    assert not Reservation.objects.exists()


@pytest.mark.django_db
def test_the_calendar_file_is_in_the_pages_language(client, driver, lot, frozen_now):
    reservation = reservation_confirm(reservation_id=book(driver, lot, start=START).pk).reservation
    client.force_login(driver)
    ics = client.get(f"/reservations/{reservation.code}/calendar.ics", **FR).content.decode()
    lines = ics.replace("\r\n ", "").split("\r\n")
    summary = next(line for line in lines if line.startswith("SUMMARY:"))
    assert summary == f"SUMMARY:Stationnement à {lot.name} ({reservation.code})", repr(summary)
    description = next(line for line in lines if line.startswith("DESCRIPTION:"))
    assert f"Code de réservation {reservation.code}\\, place C-001." in description
    assert f"Entrée dès 09:45 (Europe/Paris){NBSP}: à la barrière" in description
