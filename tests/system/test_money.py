"""Every cent settles by one rule: hundreds of bookings driven through every
outcome against localstripe, then Stripe's own records and ours checked
against the rules, reservation by reservation.

Outcomes: paid (some after a decline), arrived and left on time, early or late,
a car whose exit the gate never reported, no-shows short and over 24 hours,
cancellations before and after the start (and after the grace, before the
sweep), unpaid holds that lapse, bookings charged at once because they end
beyond a card hold's life; bookings extended once or twice before they start or
while the car is parked (each extension a payment of its own, held or charged
at once); gate calls, payments and extensions repeated, and on PostgreSQL sent
twice at once from two threads. The scheduler's sweeps run as the clock
moves on.

Re-run with other dice: MONEY_SEED=<n> MONEY_BOOKINGS=<n per policy> make test
PYTEST_ARGS="tests/system/test_money.py -s"
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection, connections
from django.utils import timezone

from config.errors import ApplicationError
from lots.pricing import window_price
from payments.models import Payment, PaymentAttempt
from payments.services import payment_operations_retry
from reservations.models import Reservation, Settlement, Status
from reservations.services import (
    holds_expire_lapsed,
    no_shows_declare,
    overstays_hold_spots,
    payment_reference,
    reservation_arrive,
    reservation_cancel,
    reservation_complete,
    reservation_create,
    reservation_depart,
    reservation_extend,
    reservations_settle_pending,
    unreported_exits_capture,
)
from tests.factories import LotFactory, RateFactory, SpotFactory, UserFactory
from tests.stripe_support import DECLINED_CARD

pytestmark = pytest.mark.django_db(transaction=True)

SEED = int(os.environ.get("MONEY_SEED", "20261201"))
BOOKINGS = int(os.environ.get("MONEY_BOOKINGS", "70"))
HOURLY, DAILY_MAX = 300, 2400
GRACE = timedelta(minutes=60)
EARLY = timedelta(minutes=15)
DAY = timedelta(hours=24)
OUTCOMES = (
    "on_time",
    "early",
    "late",
    "exit_unreported",
    "no_show",
    "cancel_before",
    "cancel_after",
    "lapse",
)


def price(start: datetime, end: datetime) -> int:
    return window_price(start, end, hourly=HOURLY, daily_max=DAILY_MAX)


@dataclass
class Plan:
    number: int
    outcome: str
    start: datetime
    end: datetime
    decline_first: bool
    twice_at_once: bool  # gate calls and payment sent twice (at once on PostgreSQL)
    moment: datetime | None = None  # of the arrival, departure or cancellation
    arrive_at: datetime | None = None
    # Extensions: when each is asked for, and by how much it moves the end.
    extensions: list[tuple[datetime, timedelta]] = field(default_factory=list)
    reservation: Reservation | None = None
    notes: list[str] = field(default_factory=list)


def _plans(rng: random.Random, now: datetime, count: int) -> list[Plan]:
    plans = []
    for number in range(count):
        outcome = OUTCOMES[number % len(OUTCOMES)]
        start = now + timedelta(minutes=rng.randrange(60, 4 * 24 * 60, 5))
        if rng.random() < 0.2:  # ends beyond a card hold's life: charged at once
            length = timedelta(hours=rng.randrange(24 * 5, 24 * 8))
            start = now + timedelta(minutes=rng.randrange(60, 2 * 24 * 60, 5))
        elif outcome == "no_show" and rng.random() < 0.5:
            length = timedelta(hours=rng.randrange(25, 60))  # over 24 hours
        else:
            length = timedelta(minutes=rng.randrange(30, 30 * 60, 5))
        plan = Plan(
            number=number,
            outcome=outcome,
            start=start,
            end=start + length,
            decline_first=rng.random() < 0.25,
            twice_at_once=rng.random() < 0.3,
        )
        arrive = start - EARLY + timedelta(minutes=rng.randrange(0, 75))
        if outcome in ("on_time", "early", "late", "exit_unreported"):
            plan.arrive_at = min(arrive, plan.end - timedelta(minutes=1))
        if outcome == "on_time":
            plan.moment = plan.end - timedelta(minutes=rng.randrange(0, 20))
        elif outcome == "early":
            plan.moment = plan.arrive_at + (plan.end - plan.arrive_at) / 3
        elif outcome == "late":
            plan.moment = plan.end + timedelta(minutes=rng.randrange(1, 600))
        elif outcome == "exit_unreported":
            plan.moment = plan.end + timedelta(hours=rng.randrange(3, 30))
        elif outcome == "cancel_before":
            plan.moment = start - timedelta(minutes=rng.randrange(1, 50))
        elif outcome == "cancel_after":
            # Up to twice the grace: some after it ends, some of those before
            # the no-show sweep has run.
            plan.moment = start + timedelta(seconds=rng.randrange(0, 2 * 3600))
        plan.moment = max(plan.moment, plan.arrive_at or plan.moment) if plan.moment else None
        if outcome != "lapse" and rng.random() < 0.4:
            # Before the start, or while parked; before the end, and before the
            # departure or cancellation.
            first = plan.arrive_at or now + timedelta(minutes=1)
            last = min(plan.moment or plan.end, plan.end if plan.arrive_at else plan.start)
            for _ in range(rng.choice((1, 1, 2))):
                if last <= first:
                    break
                at = first + (last - first) * rng.uniform(0.05, 0.9)
                more = timedelta(minutes=rng.choice((30, 45, 60, 150, 600, 26 * 60)))
                plan.extensions.append((at, more))
            plan.extensions.sort()
        plans.append(plan)
    return plans


def _answer(call):
    try:
        return call()
    except ApplicationError as exc:
        return exc


def _twice(plan: Plan, call) -> list:
    """Run `call` twice: from two threads at once on PostgreSQL, else in turn."""
    results: list = []

    def run():
        try:
            results.append(call())
        except ApplicationError as exc:
            results.append(exc)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()

    if connection.vendor == "postgresql":
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        run()
        run()
    return results


def _sweep() -> None:
    holds_expire_lapsed()
    no_shows_declare()
    overstays_hold_spots()
    unreported_exits_capture()
    payment_operations_retry()
    reservations_settle_pending()


def _expected(plan: Plan, reservation: Reservation, late_policy: str) -> dict[str, int]:
    """What the rules say the driver pays, worked out here from the rules as the
    design states them, not from the code under test."""
    start, end = reservation.start, reservation.end
    no_show = price(start, min(end, start + DAY))
    if reservation.status == Status.EXPIRED:
        return {"booking": 0}
    if reservation.status == Status.NO_SHOW:
        return {"booking": no_show}
    if reservation.status == Status.COMPLETED:
        left = reservation.departed_at
        return {"booking": price(start, end), "overstay": price(end, left) if left > end else 0}
    assert reservation.status == Status.CANCELLED, reservation.status
    at = plan.moment
    if at < start:
        return {"booking": 0}
    if at >= start + GRACE or late_policy == "charge":
        return {"booking": no_show}
    if late_policy == "elapsed":
        return {"booking": min(price(start, max(at, start + timedelta(hours=1))), no_show)}
    return {"booking": 0}


def _all_intents(stripe) -> list[dict]:
    listed = stripe.client.v1.payment_intents.list(params={"limit": 100})
    return [intent.to_dict() for intent in listed.auto_paging_iter()]


@pytest.mark.parametrize("late_policy", ["charge", "elapsed", "refund"])
def test_every_captured_cent_follows_one_rule(stripe, settings, late_policy):
    settings.LATE_CANCEL_POLICY = late_policy
    settings.NO_SHOW_GRACE_MINUTES = 60
    settings.EARLY_ARRIVAL_MINUTES = 15
    rng = random.Random(f"{SEED}:{late_policy}")
    lot = LotFactory(currency="usd", timezone="UTC")
    RateFactory(lot=lot, hourly_amount=HOURLY, daily_max_amount=DAILY_MAX)
    SpotFactory.create_batch(BOOKINGS, lot=lot)  # room for everyone: money is the point
    now = timezone.now()
    plans = _plans(rng, now, BOOKINGS)

    # Book and pay, at `now`.
    with time_machine.travel(now, tick=True):
        for plan in plans:
            driver = UserFactory()
            plan.reservation = reservation_create(
                user=driver,
                lot_id=lot.slug,
                vehicle_type="car",
                start=plan.start,
                end=plan.end,
                vehicle_plate=f"M{plan.number:05d}",
                idempotency_key=f"money-{plan.number}",
            ).reservation
            if plan.outcome == "lapse":
                continue
            if plan.decline_first:
                with pytest.raises(ApplicationError) as declined:
                    reservation_complete(
                        reservation_id=plan.reservation.pk,
                        payment_method_id=stripe.card(DECLINED_CARD),
                    )
                assert declined.value.status == 402
            card = stripe.card()

            def pay(r=plan.reservation, card=card):
                return reservation_complete(reservation_id=r.pk, payment_method_id=card).status

            answers = _twice(plan, pay) if plan.twice_at_once else [_answer(pay)]
            assert all(
                a == Status.CONFIRMED or getattr(a, "code", "") == "payment_in_progress"
                for a in answers
            ), answers

    # Then let time pass: every plan's moments, with the sweeps in between.
    events: list[tuple[datetime, int, str, Plan | None]] = []
    for plan in plans:
        if plan.arrive_at:
            events.append((plan.arrive_at, 1, "arrive", plan))
        if plan.outcome in ("on_time", "early", "late", "exit_unreported"):
            events.append((plan.moment, 2, "depart", plan))
        if plan.outcome in ("cancel_before", "cancel_after"):
            events.append((plan.moment, 2, "cancel", plan))
        for tick in (plan.start + GRACE, plan.end, plan.end + timedelta(hours=2, minutes=1)):
            events.append((tick + timedelta(minutes=rng.randrange(1, 20)), 0, "sweep", None))
    events.append((now + timedelta(minutes=16), 0, "sweep", None))  # holds lapse
    events.sort(key=lambda e: (e[0], e[1]))

    for plan in plans:
        for number, (at, more) in enumerate(plan.extensions):
            events.append((at, 1, f"extend:{number}:{int(more.total_seconds())}", plan))
    events.sort(key=lambda e: (e[0], e[1]))

    outcomes: Counter = Counter()
    extensions: Counter = Counter()
    for moment, _, action, plan in events:
        with time_machine.travel(moment, tick=False):
            if action == "sweep":
                _sweep()
                continue
            r = plan.reservation
            if action.startswith("extend"):
                _, number, seconds = action.split(":")

                # Both copies of a repeated request ask for the same end.
                target = Reservation.objects.get(pk=r.pk).end + timedelta(seconds=int(seconds))
                key = f"money-{plan.number}-extend-{number}"

                def call(r=r, target=target, key=key):
                    return reservation_extend(
                        reservation_id=r.pk, end=target, idempotency_key=key
                    ).reservation.end

                answers = _twice(plan, call) if plan.twice_at_once else [_answer(call)]
                plan.notes.append(f"{action}: {answers}")
                codes = {getattr(a, "code", "extended") for a in answers}
                extensions.update(codes)
                # Refused only when the spot is booked after, or while a twin
                # request (same key) is paying; a repeat gets the same answer.
                assert codes <= {"extended", "spot_taken_after", "payment_in_progress"}, plan
                ends = {a for a in answers if not isinstance(a, ApplicationError)}
                assert len(ends) <= 1, plan
                continue
            if action == "arrive":

                def call(r=r, moment=moment):
                    return reservation_arrive(reservation_id=r.pk, at=moment).reservation.status

            elif action == "depart":

                def call(r=r, moment=moment):
                    return reservation_depart(reservation_id=r.pk, at=moment).reservation.status

            else:

                def call(r=r):
                    return reservation_cancel(reservation_id=r.pk).reservation.status

            answers = _twice(plan, call) if plan.twice_at_once else [_answer(call)]
            plan.notes.append(f"{action}: {answers}")
            if action == "cancel":
                # After the grace the sweep may have declared a no-show first.
                ok = {Status.CANCELLED} | ({"illegal_transition"} if moment >= r.start else set())
                assert {getattr(a, "code", a) for a in answers} <= ok, plan
            else:
                assert all(not isinstance(a, ApplicationError) for a in answers), plan

    with time_machine.travel(max(p.end for p in plans) + timedelta(days=2), tick=False):
        _sweep()
        _sweep()

    # What Stripe holds, reservation by reservation, against the rules.
    intents = {intent["id"]: intent for intent in _all_intents(stripe)}
    expected_total = kept_total = 0
    for plan in plans:
        r = Reservation.objects.get(pk=plan.reservation.pk)
        outcomes[r.status] += 1
        assert r.status in (
            Status.COMPLETED,
            Status.NO_SHOW,
            Status.CANCELLED,
            Status.EXPIRED,
        ), (plan, r.status)
        assert r.settlement == Settlement.SETTLED, (plan, r.settlement, r.settlement_error)
        expected = _expected(plan, r, late_policy)
        # The booking's payment and its extensions' are one purse for parking.
        payments = list(Payment.objects.filter(reference__startswith=payment_reference(r)))
        by_kind: dict[str, list[Payment]] = {"booking": [], "overstay": []}
        for payment in payments:
            by_kind["overstay" if payment.kind == "overstay" else "booking"].append(payment)
        for kind, amount in expected.items():
            found = by_kind[kind]
            kept = sum(stripe.kept(p.payment_intent_id) for p in found if p.payment_intent_id)
            assert kept == amount, (plan, kind, kept, amount, r.status)
            assert sum(p.amount_net for p in found) == amount, (plan, kind)
            expected_total += amount
            kept_total += kept
        # Captured minus refunded is what is due, every payment of it counted.
        assert sum(p.amount_net for p in payments) == (r.amount_due or 0) + r.overstay_amount
        # The reservation's price is its booking's and applied extensions' amounts.
        applied = r.extensions.filter(state="applied")
        assert r.price_amount == price(r.start, r.end)
        assert r.end == (applied.last().new_end if applied else plan.end), plan
        # No authorisation is left open on a finished reservation.
        for payment in payments:
            if payment.payment_intent_id:
                status = intents[payment.payment_intent_id]["status"]
                assert status in ("succeeded", "canceled"), (plan, payment.kind, status)
    assert kept_total == expected_total
    # Nothing is left open at Stripe (declined cards' intents are cancelled too),
    # and every intent it holds is one of ours, on record.
    left_open = {i["id"]: i["status"] for i in intents.values()}
    left_open = {k: v for k, v in left_open.items() if v not in ("succeeded", "canceled")}
    assert left_open == {}
    recorded = set(PaymentAttempt.objects.values_list("intent_id", flat=True))
    assert set(intents) == recorded
    # Every plan's outcome really happened, in every way it can.
    assert set(outcomes) == {
        Status.COMPLETED,
        Status.NO_SHOW,
        Status.CANCELLED,
        Status.EXPIRED,
    }, outcomes
    assert extensions["extended"] > 0, extensions

    report = StringIO()
    call_command("reconcile_payments", stdout=report)
    assert "differing 0" in report.getvalue(), report.getvalue()
    print(
        f"\n{late_policy}: {len(plans)} bookings {dict(outcomes)}; extensions {dict(extensions)}; "
        f"kept {kept_total} = expected {expected_total}; seed {SEED}"
    )
