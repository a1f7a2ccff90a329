"""Partner webhooks: reservation events read from the events table, signed,
POSTed to a real HTTP server in a thread, retried with backoff, given up, and
never enqueued twice."""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import time_machine
from django.db import connections
from django.utils import timezone

from config.errors import InvalidInput
from lots.webhooks import signing
from lots.webhooks.models import EVENT_TYPES, WebhookDelivery, WebhookEndpoint, WebhookStream
from lots.webhooks.services import (
    deliveries_prune,
    deliveries_send_due,
    delivery_retry,
    retry_delay,
    webhook_endpoint_create,
    webhook_test_send,
    webhook_url_check,
)
from reservations.models import ReservationEvent
from reservations.services import (
    reservation_arrive,
    reservation_cancel,
    reservation_confirm,
    reservation_depart,
    reservation_expire,
    reservation_mark_no_show,
)
from reservations.services.webhooks import STREAM, webhook_events_dispatch
from reservations.tasks import dispatch_webhooks
from tests.conftest import NOW
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.lots.webhook_receiver import HANG, Receiver, signature_is_valid
from tests.reservations.helpers import book

# Webhooks are sent outside any transaction (sending.post refuses otherwise):
# tests commit as the real thing does.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _loopback_http(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK_HTTP = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 1


@pytest.fixture
def receiver():
    with Receiver() as running:
        yield running


@pytest.fixture
def endpoint(lot, receiver) -> WebhookEndpoint:
    return webhook_endpoint_create(lot=lot, url=receiver.url, event_types=list(EVENT_TYPES))


def deliveries(**filters) -> list[WebhookDelivery]:
    return list(WebhookDelivery.objects.filter(**filters).order_by("pk"))


# --- delivery and signature -----------------------------------------------------------------


def test_a_booking_reaches_the_lots_endpoint_signed_with_its_secret(
    lot, driver, endpoint, receiver
):
    reservation = book(driver, lot, vehicle_plate="AB-123-CD")

    assert webhook_events_dispatch() == 1
    assert deliveries_send_due() == 1

    [request] = receiver.received
    assert request.path == "/hooks/parkspot"
    assert request.headers["Content-Type"] == "application/json"
    assert signature_is_valid(endpoint.secret, request.headers["ParkSpot-Signature"], request.body)
    assert not signature_is_valid(
        "whsec_other", request.headers["ParkSpot-Signature"], request.body
    )
    event = request.json
    assert request.headers["ParkSpot-Event-Id"] == event["id"]
    assert request.headers["ParkSpot-Event-Type"] == event["type"] == "reservation.created"
    assert event["id"].startswith("evt_")
    got = event["data"]["reservation"]
    assert got["id"] == reservation.code
    assert got["lot_id"] == lot.slug
    assert got["status"] == "pending_payment"
    assert got["spot"]["label"] == reservation.spot.label
    assert got["vehicle_plate"] == reservation.vehicle_plate
    assert got["price"] == {"amount": reservation.price_amount, "currency": "eur"}
    # Nothing that says who the driver is.
    assert driver.email not in request.body.decode()

    [delivery] = deliveries()
    assert delivery.status == "delivered"
    assert delivery.attempts == 1
    assert delivery.last_response_code == 200
    assert delivery.delivered_at is not None


def test_the_signature_check_refuses_a_changed_body_a_wrong_secret_and_an_old_timestamp():
    body = json.dumps({"id": "evt_1"}).encode()
    header = signing.sign("whsec_a", body, timestamp=1_800_000_000)

    assert signing.verify("whsec_a", header, body, now=1_800_000_010) == 1_800_000_000
    for secret, sent, now in [
        ("whsec_a", body + b" ", 1_800_000_010),
        ("whsec_b", body, 1_800_000_010),
        ("whsec_a", body, 1_800_000_000 + 301),
    ]:
        with pytest.raises(signing.SignatureError):
            signing.verify(secret, header, sent, now=now)
    with pytest.raises(signing.SignatureError):
        signing.verify("whsec_a", "v1=abc", body)


def test_every_state_change_is_sent_as_its_event_type(lot, driver, endpoint, receiver):
    start = timezone.now() + timedelta(minutes=30)
    visit = book(driver, lot, start=start)
    reservation_confirm(reservation_id=visit.pk)
    reservation_arrive(reservation_id=visit.pk, at=start)
    reservation_depart(reservation_id=visit.pk, at=start + timedelta(hours=1))
    cancelled = book(driver, lot, start=start)
    reservation_cancel(reservation_id=cancelled.pk, reason="plans changed")
    lapsed = book(driver, lot, start=start)
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        reservation_expire(reservation_id=lapsed.pk)
    absent = book(driver, lot, start=timezone.now() + timedelta(minutes=1))
    reservation_confirm(reservation_id=absent.pk)
    with time_machine.travel(timezone.now() + timedelta(hours=3)):
        reservation_mark_no_show(reservation_id=absent.pk)

    webhook_events_dispatch()
    deliveries_send_due()

    sent = [(r.json["data"]["reservation"]["id"], r.json["type"]) for r in receiver.received]
    assert sent == [
        (visit.code, "reservation.created"),
        (visit.code, "reservation.confirmed"),
        (visit.code, "reservation.arrived"),
        (visit.code, "reservation.left"),
        (cancelled.code, "reservation.created"),
        (cancelled.code, "reservation.cancelled"),
        (lapsed.code, "reservation.created"),
        (lapsed.code, "reservation.cancelled"),
        (absent.code, "reservation.created"),
        (absent.code, "reservation.confirmed"),
        (absent.code, "reservation.no_show"),
    ]
    by_type = {
        (r.json["data"]["reservation"]["id"], r.json["type"]): r.json for r in receiver.received
    }
    assert by_type[(lapsed.code, "reservation.cancelled")]["data"]["reason"] == "expired"
    assert (
        by_type[(lapsed.code, "reservation.cancelled")]["data"]["reservation"]["status"]
        == "expired"
    )
    assert by_type[(cancelled.code, "reservation.cancelled")]["data"]["previous_status"] == (
        "pending_payment"
    )
    assert len({r.json["id"] for r in receiver.received}) == 11


def test_an_endpoint_gets_only_the_event_types_it_subscribes_to(lot, driver, receiver):
    webhook_endpoint_create(lot=lot, url=receiver.url, event_types=["reservation.confirmed"])
    first = book(driver, lot)
    reservation_confirm(reservation_id=first.pk)
    book(driver, lot)

    webhook_events_dispatch()
    deliveries_send_due()

    assert [r.json["type"] for r in receiver.received] == ["reservation.confirmed"]


# --- retries --------------------------------------------------------------------------------


def test_a_500_is_retried_after_the_backoff_with_the_same_event_id(lot, driver, endpoint, receiver):
    receiver.answers = [500]
    with time_machine.travel(NOW, tick=False) as clock:
        book(driver, lot)
        webhook_events_dispatch()

        assert deliveries_send_due() == 1
        [delivery] = deliveries()
        assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
            "pending",
            1,
            500,
        )
        assert delivery.next_attempt_at == NOW + timedelta(seconds=30)

        clock.shift(timedelta(seconds=29))
        assert deliveries_send_due() == 0  # not due yet
        clock.shift(timedelta(seconds=1))
        assert deliveries_send_due() == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_response_code) == (
        "delivered",
        2,
        200,
    )
    # At least once: the receiver saw the event twice, under one id to deduplicate on.
    first, second = receiver.received
    assert first.headers["ParkSpot-Event-Id"] == second.headers["ParkSpot-Event-Id"]
    assert first.body == second.body
    assert first.headers["ParkSpot-Signature"] != second.headers["ParkSpot-Signature"]


def test_an_endpoint_that_does_not_answer_in_time_is_tried_again_later(
    lot, driver, endpoint, receiver
):
    receiver.answers = [HANG]
    book(driver, lot)
    webhook_events_dispatch()

    deliveries_send_due()  # the receiver holds on past WEBHOOK_TIMEOUT_SECONDS
    receiver.release.set()

    [delivery] = deliveries()
    assert delivery.status == "pending"
    assert delivery.attempts == 1
    assert delivery.last_response_code is None
    assert "timed out" in delivery.last_error.lower()
    with time_machine.travel(delivery.next_attempt_at):
        assert deliveries_send_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == "delivered"


def test_the_backoff_grows_to_about_a_day_over_eight_attempts():
    delays = [retry_delay(n) for n in range(1, 8)]
    assert delays[0] == timedelta(seconds=30)
    assert all(later > earlier for earlier, later in itertools.pairwise(delays))
    assert timedelta(hours=20) < sum(delays, timedelta()) < timedelta(hours=26)


def test_a_delivery_is_given_up_after_the_last_attempt_and_staff_can_send_it_again(
    lot, driver, endpoint, receiver, settings
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.answers = [503, 503, 503]
    with time_machine.travel(NOW, tick=False) as clock:
        book(driver, lot)
        webhook_events_dispatch()
        for _ in range(3):
            assert deliveries_send_due() == 1
            clock.shift(timedelta(hours=12))
        assert deliveries_send_due() == 0

        [delivery] = deliveries()
        assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
        assert delivery.last_response_code == 503

        assert delivery_retry(delivery_id=delivery.pk)
        assert deliveries_send_due() == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 4)
    assert len(receiver.received) == 4
    assert not delivery_retry(delivery_id=delivery.pk)  # delivered: nothing to do


def test_the_log_forgets_finished_deliveries_after_its_days_but_keeps_pending_ones(
    lot, driver, endpoint, receiver, settings
):
    settings.WEBHOOK_LOG_DAYS = 30
    receiver.answers = [200, 503]
    with time_machine.travel(NOW, tick=False) as clock:
        book(driver, lot)
        book(driver, lot, start=NOW + timedelta(days=2))
        webhook_events_dispatch()
        assert deliveries_send_due() == 2  # one delivered, one to retry
        clock.shift(timedelta(days=29))
        assert deliveries_prune() == 0
        clock.shift(timedelta(days=2))
        newer = book(driver, lot, start=NOW + timedelta(days=40))
        webhook_events_dispatch()
        assert deliveries_prune(batch=1) == 1

    kept = deliveries()
    assert [d.status for d in kept] == ["pending", "pending"]  # the old retry and the new one
    assert kept[1].payload["data"]["reservation"]["id"] == newer.code


def test_a_redirect_is_a_failed_attempt_not_followed(lot, driver, endpoint, receiver):
    receiver.answers = [302]
    book(driver, lot)
    webhook_events_dispatch()
    deliveries_send_due()

    [delivery] = deliveries()
    assert (delivery.status, delivery.last_response_code) == ("pending", 302)
    assert len(receiver.received) == 1


def test_an_endpoint_turned_off_gets_nothing_more(lot, driver, endpoint, receiver):
    book(driver, lot)
    webhook_events_dispatch()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)

    deliveries_send_due()

    assert receiver.received == []
    [delivery] = deliveries()
    assert delivery.status == "failed"
    book(driver, lot)
    assert webhook_events_dispatch() == 0


def test_staff_can_send_a_test_event(lot, endpoint, receiver):
    webhook_test_send(endpoint_id=endpoint.pk)
    deliveries_send_due()

    [request] = receiver.received
    assert request.json["type"] == "webhook.test"
    assert signature_is_valid(endpoint.secret, request.headers["ParkSpot-Signature"], request.body)


def test_the_scheduled_tasks_dispatch_and_send(lot, driver, endpoint, receiver):
    book(driver, lot)

    assert dispatch_webhooks.delay().get() == 1  # queues the send (eager in tests)

    assert len(receiver.received) == 1
    assert deliveries()[0].status == "delivered"


# --- the outbox reader ----------------------------------------------------------------------


def test_a_lot_without_endpoints_gets_no_deliveries(lot, driver, endpoint, receiver):
    other = LotFactory(currency="usd")
    RateFactory(lot=other)
    SpotFactory(lot=other)
    book(driver, other)
    mine = book(driver, lot)

    webhook_events_dispatch()
    deliveries_send_due()

    assert [r.json["data"]["reservation"]["id"] for r in receiver.received] == [mine.code]
    assert WebhookDelivery.objects.count() == 1


def test_with_no_endpoint_anywhere_the_reader_only_moves_its_cursor(lot, driver):
    book(driver, lot)
    book(driver, lot)

    assert webhook_events_dispatch() == 0

    assert WebhookDelivery.objects.count() == 0
    stream = WebhookStream.objects.get(name=STREAM)
    assert stream.last_id == ReservationEvent.objects.latest("pk").pk


def test_running_the_reader_twice_enqueues_each_event_once(lot, driver, endpoint, receiver):
    book(driver, lot)
    assert webhook_events_dispatch() == 1
    assert webhook_events_dispatch() == 0
    WebhookStream.objects.filter(name=STREAM).update(last_id=0)  # as if the cursor were lost
    assert webhook_events_dispatch() == 0

    assert WebhookDelivery.objects.count() == 1


def test_an_event_committed_after_a_later_one_was_read_is_still_sent(
    lot, driver, endpoint, receiver, settings
):
    book(driver, lot)
    webhook_events_dispatch()  # the reader has started
    early = book(driver, lot)
    late = book(driver, lot)
    # The first booking's event "commits late": not there when the reader runs.
    held = ReservationEvent.objects.get(reservation=early)
    ReservationEvent.objects.filter(pk=held.pk).delete()

    assert webhook_events_dispatch() == 1  # the second booking's
    stream = WebhookStream.objects.get(name=STREAM)
    assert str(held.pk) in stream.gaps

    held.save(force_insert=True)  # now it commits
    assert webhook_events_dispatch() == 1
    deliveries_send_due()

    sent = sorted(r.json["data"]["reservation"]["id"] for r in receiver.received[1:])
    assert sent == sorted([early.code, late.code])
    assert WebhookStream.objects.get(name=STREAM).gaps == {}


def test_a_gap_that_never_fills_is_forgotten(lot, driver, endpoint, receiver, settings):
    book(driver, lot)
    webhook_events_dispatch()  # the reader has started
    first = book(driver, lot)
    book(driver, lot)
    ReservationEvent.objects.filter(reservation=first).delete()  # rolled back, say
    webhook_events_dispatch()
    assert WebhookStream.objects.get(name=STREAM).gaps

    with time_machine.travel(timezone.now() + timedelta(seconds=settings.WEBHOOK_GAP_SECONDS + 1)):
        webhook_events_dispatch()

    assert WebhookStream.objects.get(name=STREAM).gaps == {}


@pytest.mark.postgres
def test_readers_running_at_once_enqueue_each_event_once(receiver, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK_HTTP = True
    lot = LotFactory(currency="eur")
    RateFactory(lot=lot)
    for n in range(20):
        SpotFactory(lot=lot, label=f"C-{n:03}")
    webhook_endpoint_create(lot=lot, url=receiver.url, event_types=list(EVENT_TYPES))
    driver = UserFactory()
    for _ in range(20):
        book(driver, lot)
    barrier = threading.Barrier(6)

    def read() -> int:
        try:
            barrier.wait(timeout=30)
            return webhook_events_dispatch(limit=7)  # several small batches each
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=6) as pool:
        created = list(pool.map(lambda _: read(), range(6)))

    assert sum(created) == 20
    assert WebhookDelivery.objects.count() == 20
    assert WebhookDelivery.objects.values("event_id").distinct().count() == 20


@pytest.mark.postgres
def test_senders_running_at_once_send_each_delivery_once(receiver, settings):
    settings.WEBHOOK_ALLOW_LOOPBACK_HTTP = True
    lot = LotFactory(currency="eur")
    RateFactory(lot=lot)
    for n in range(12):
        SpotFactory(lot=lot, label=f"C-{n:03}")
    webhook_endpoint_create(lot=lot, url=receiver.url, event_types=list(EVENT_TYPES))
    driver = UserFactory()
    for _ in range(12):
        book(driver, lot)
    webhook_events_dispatch()
    barrier = threading.Barrier(4)

    def send() -> int:
        try:
            barrier.wait(timeout=30)
            return deliveries_send_due(limit=5)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        sent = list(pool.map(lambda _: send(), range(4)))

    assert sum(sent) == 12
    assert len(receiver.received) == 12
    assert len({r.headers["ParkSpot-Event-Id"] for r in receiver.received}) == 12


# --- registration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://partner.example/hooks", True),
        ("http://127.0.0.1:9000/hooks", True),
        ("http://localhost/hooks", True),
        ("http://partner.example/hooks", False),
        ("http://10.0.0.5/hooks", False),
        ("https://10.0.0.5/hooks", False),
        ("https://169.254.169.254/latest/meta-data", False),
        ("https://192.168.1.20/hooks", False),
        ("https://[fd00::1]/hooks", False),
        ("https://203.0.113.9/hooks", False),  # documentation range: not global
        ("https://8.8.8.8/hooks", True),
        ("ftp://partner.example/hooks", False),
        ("https://user:pw@partner.example/hooks", False),
        ("https:///nohost", False),
        ("not a url", False),
    ],
)
def test_endpoints_must_be_https_except_loopback_when_allowed(url, allowed):
    if allowed:
        assert webhook_url_check(url) == url
    else:
        with pytest.raises(InvalidInput):
            webhook_url_check(url)


def test_loopback_is_refused_unless_the_setting_allows_it(settings):
    settings.WEBHOOK_ALLOW_LOOPBACK_HTTP = False
    with pytest.raises(InvalidInput) as refused:
        webhook_url_check("http://localhost:9000/hooks")
    assert refused.value.code == "webhook_url_not_https"
    for url in ("http://127.0.0.1:9000/hooks", "https://127.0.0.1/hooks", "https://[::1]/h"):
        with pytest.raises(InvalidInput) as refused:
            webhook_url_check(url)
        assert refused.value.code == "webhook_url_not_public"


def test_each_endpoint_gets_its_own_secret(lot):
    one = webhook_endpoint_create(lot=lot, url="https://a.example/h", event_types=[])
    two = webhook_endpoint_create(lot=lot, url="https://b.example/h", event_types=[])
    assert one.secret.startswith("whsec_")
    assert one.secret != two.secret
    assert len(one.secret) > 40


def test_a_name_that_points_inside_our_network_is_not_sent_to(lot, driver, receiver, settings):
    # Registered while loopback was allowed (or a public name whose address
    # changed since): at sending time the resolved address decides.
    endpoint = webhook_endpoint_create(
        lot=lot, url=receiver.url.replace("127.0.0.1", "localhost"), event_types=list(EVENT_TYPES)
    )
    settings.WEBHOOK_ALLOW_LOOPBACK_HTTP = False
    book(driver, lot)
    webhook_events_dispatch()

    deliveries_send_due()

    assert receiver.received == []
    [delivery] = deliveries(endpoint=endpoint)
    assert delivery.status == "pending"
    assert "not a public address" in delivery.last_error
