"""What the virtual users ask for: availability checks and bookings.

Windows always pass the API's rules (DESIGN §4): aware times with an offset,
start from now to 90 days ahead, length 30 minutes to 30 days.

Availability: a share (`repeat_ratio`) of the checks are popular windows (this
evening, tomorrow morning, the weekend...) on popular lots, which repeat and so
can be answered from the cache; the rest are unique windows that cannot.

Bookings: a share (`hot_ratio`) go to two events at a small lot next to a
stadium, which sell out within seconds and then answer 409 no_spot_available;
the rest are spread over all lots and the next 60 days.
"""

from __future__ import annotations

import itertools
import json
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

from bench.database import Booked
from bench.loadgen import Request, Response

# Clients send times in their own offsets; the same instant must hit the same cache key.
OFFSETS = tuple(timezone(timedelta(minutes=m)) for m in (0, 60, 120, -300, -240, 540, 330, 600))
VEHICLE_TYPES = ("car",) * 8 + ("van", "motorcycle")
SHORT_HOURS = (1, 2, 2, 3, 4, 4, 8, 9, 24, 72)

AVAILABILITY_PATH = "/api/v1/lots/{lot}/availability?vehicle_type={vt}&start={start}&end={end}"
RESERVATIONS_PATH = "/api/v1/reservations"
COMPLETE_PATH = "/api/v1/reservations/{code}/complete"
# The ceiling (bench/ceiling): the same questions, asked of the least a DRF endpoint can do.
CEILING_READ_PATH = "/bench-ceiling/lots/{lot}/rate?vehicle_type={vt}&start={start}&end={end}"
CEILING_BOOK_PATH = "/bench-ceiling/bookings"


def iso(moment: datetime, rng: random.Random) -> str:
    return moment.astimezone(rng.choice(OFFSETS)).isoformat()


def popularity(count: int, skew: float = 0.8) -> list[float]:
    """Zipf-like weights: a few lots are much busier than most."""
    return [1.0 / (rank + 1) ** skew for rank in range(count)]


def _next_hour(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


class AvailabilityWorkload:
    def __init__(
        self,
        lot_slugs: list[str],
        *,
        repeat_ratio: float,
        rng: random.Random,
        now: datetime,
        ceiling: bool = False,
    ) -> None:
        self.rng = rng
        self.path = CEILING_READ_PATH if ceiling else AVAILABILITY_PATH
        self.lots = lot_slugs
        self.cum_weights = list(itertools.accumulate(popularity(len(lot_slugs))))
        self.repeat_ratio = repeat_ratio
        base = _next_hour(now)
        # About 40 windows that many drivers ask about: the next days at common hours.
        self.popular: list[tuple[datetime, datetime]] = [
            (base + timedelta(days=day, hours=hour), base + timedelta(days=day, hours=hour + h))
            for day in range(5)
            for hour, h in ((1, 2), (3, 1), (6, 4), (10, 9), (20, 24), (30, 3), (44, 72), (50, 8))
        ]
        self.now = now
        self.kinds: Counter[str] = Counter()
        self._seen: set[tuple[str, str, datetime, datetime]] = set()
        self._asked = 0

    def repeat_share_pct(self) -> float:
        """Share of checks that asked a question asked before (the best hit rate a
        shared cache could reach, before expiry and per-process caches)."""
        return round((1 - len(self._seen) / self._asked) * 100, 1) if self._asked else 0.0

    def request(self, user: int) -> Request:
        rng = self.rng
        if rng.random() < self.repeat_ratio:
            kind = "repeated"
            lot = rng.choices(self.lots, cum_weights=self.cum_weights)[0]
            start, end = rng.choice(self.popular)
            vehicle_type = "car"
        else:
            kind = "unique"
            lot = rng.choice(self.lots)
            start = self.now + timedelta(minutes=rng.randrange(30, 60 * 24 * 60))
            end = start + timedelta(minutes=rng.randrange(30, 60 * 24 * 3))
            vehicle_type = rng.choice(VEHICLE_TYPES)
        self.kinds[kind] += 1
        self._asked += 1
        self._seen.add((lot, vehicle_type, start, end))
        path = self.path.format(
            lot=lot,
            vt=vehicle_type,
            start=quote(iso(start, rng), safe=""),
            end=quote(iso(end, rng), safe=""),
        )
        return Request("GET", path, tag=kind)


def booked_from_answer(body: bytes) -> Booked:
    """The reservation id, spot and window a 201 answer to a booking gave."""
    answer = json.loads(body)
    return Booked(
        code=answer["id"],
        spot=answer["spot"]["id"],
        start=datetime.fromisoformat(answer["start"]).astimezone(UTC),
        end=datetime.fromisoformat(answer["end"]).astimezone(UTC),
    )


@dataclass
class BookingLedger:
    """What the bookings phase saw beyond status codes."""

    booked: list[Booked] = field(default_factory=list)
    conflict_codes: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    paid: int = 0  # `complete` calls answered 200 (payments on)

    def on_response(self, user: int, request: Request, response: Response) -> None:
        if response.status == 201:
            self.booked.append(booked_from_answer(response.body))
        elif response.status == 409:
            try:
                code = json.loads(response.body).get("code", "?")
            except ValueError:
                code = "unparseable"
            self.conflict_codes[code] += 1


class BookingWorkload:
    def __init__(
        self,
        lot_slugs: list[str],
        event_slug: str,
        tokens: list[str],
        *,
        hot_ratio: float,
        idempotency_keys: bool,
        rng: random.Random,
        now: datetime,
        ceiling_spots: dict[tuple[str, str], list[int]] | None = None,
    ) -> None:
        self.rng = rng
        # For the ceiling: the spot ids of each (lot, vehicle type); the ceiling
        # books the spot it is given (one lock, one count, one insert).
        self.ceiling_spots = ceiling_spots
        self.lots = lot_slugs
        self.cum_weights = list(itertools.accumulate(popularity(len(lot_slugs))))
        self.tokens = tokens
        self.hot_ratio = hot_ratio
        self.idempotency_keys = idempotency_keys
        base = _next_hour(now)
        # A concert and a match: everyone wants the same two windows at the stadium.
        self.hot_windows = [
            (base + timedelta(days=1, hours=5), base + timedelta(days=1, hours=10)),
            (base + timedelta(days=2, hours=2), base + timedelta(days=2, hours=6)),
        ]
        self.event_slug = event_slug
        self.now = now
        self.ledger = BookingLedger()

    def request(self, user: int) -> Request:
        rng = self.rng
        if rng.random() < self.hot_ratio:
            kind = "hot"
            lot = self.event_slug
            start, end = rng.choice(self.hot_windows)
            vehicle_type = rng.choice(VEHICLE_TYPES)
        else:
            kind = "spread"
            lot = rng.choices(self.lots, cum_weights=self.cum_weights)[0]
            start = _next_hour(self.now) + timedelta(minutes=15 * rng.randrange(0, 4 * 24 * 60))
            end = start + timedelta(hours=rng.choice(SHORT_HOURS))
            vehicle_type = rng.choice(VEHICLE_TYPES)
        self.ledger.kinds[kind] += 1
        # The same draws in the same order for ParkSpot and the ceiling, so that a
        # twin generator with the same seed asks the ceiling the same questions.
        start_text, end_text, pick = iso(start, rng), iso(end, rng), rng.random()
        if self.ceiling_spots is not None:
            spots = self.ceiling_spots[(lot, vehicle_type)]
            body = json.dumps(
                {"spot": spots[int(pick * len(spots))], "start": start_text, "end": end_text}
            ).encode()
            return Request(
                "POST",
                CEILING_BOOK_PATH,
                body=body,
                headers=(("Content-Type", "application/json"),),
                tag=kind,
            )
        body = json.dumps(
            {"lot_id": lot, "vehicle_type": vehicle_type, "start": start_text, "end": end_text}
        ).encode()
        headers = [
            ("Authorization", f"Bearer {self.tokens[int(pick * len(self.tokens))]}"),
            ("Content-Type", "application/json"),
        ]
        if self.idempotency_keys:
            headers.append(("Idempotency-Key", uuid.uuid4().hex))
        return Request("POST", RESERVATIONS_PATH, body=body, headers=tuple(headers), tag=kind)


class PayingBookingWorkload:
    """Bookings with payments on: a virtual user whose booking was answered 201
    pays for it next, as an API client does, with one `complete` call carrying
    a PaymentMethod id (its driver's card, made in localstripe beforehand)."""

    def __init__(self, bookings: BookingWorkload, cards: dict[str, str]) -> None:
        self.bookings = bookings
        self.cards = cards  # bearer token -> PaymentMethod id
        self.ledger = bookings.ledger
        self._to_pay: dict[int, tuple[str, str]] = {}  # user -> (token, reservation id)

    def request(self, user: int) -> Request:
        due = self._to_pay.pop(user, None)
        if due is None:
            return self.bookings.request(user)
        token, code = due
        self.ledger.kinds["complete"] += 1
        return Request(
            "POST",
            COMPLETE_PATH.format(code=code),
            body=json.dumps({"payment_token": self.cards[token]}).encode(),
            headers=(("Authorization", f"Bearer {token}"), ("Content-Type", "application/json")),
            tag="complete",
        )

    def on_response(self, user: int, request: Request, response: Response) -> None:
        if request.tag == "complete":
            if response.status == 200:
                self.ledger.paid += 1
            return
        self.ledger.on_response(user, request, response)
        if response.status == 201:
            token = dict(request.headers)["Authorization"].removeprefix("Bearer ")
            self._to_pay[user] = (token, json.loads(response.body)["id"])


def baseline_request(user: int) -> Request:
    return Request("GET", "/healthz")
