"""What payments tell an operator (served by /metrics, config/metrics.py).

Counters: every claimed operation's outcome and the money it moved, counted
where the outcome is recorded (services._finish, and payment_sync for what a
webhook or reconciliation learned), once that record commits; every call to
Stripe, with its time, in the gateway. Facts of the database, read when
/metrics is asked: operations whose outcome is still unknown, and how far
behind the retry job is (one query on the partial index of open operations).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Min, Q
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from config.metrics import count_on_commit, seconds_late, sweeps_overdue
from payments.models import Payment

OPERATIONS = Counter(
    "parkspot_payment_operations",
    "Payment operations on Stripe (authorise, capture, cancel = release a hold, refund), "
    "by outcome: succeeded, failed (declined or refused: permanent), or unknown (Stripe "
    "did not answer; the retry job finishes it with the same idempotency key).",
    ["operation", "outcome"],
)
FAILURES = Counter(
    "parkspot_payment_failures",
    "Failed payment operations by operation and Stripe's code (card_declined, "
    "authentication_required, …).",
    ["operation", "code"],
)
_MONEY_LABELS = ["currency", "kind"]
AUTHORISED = Counter(
    "parkspot_authorised_minor_units",
    "Money authorised on cards (held, or charged at once), in minor units, by currency "
    "and kind (booking, overstay).",
    _MONEY_LABELS,
)
CAPTURED = Counter(
    "parkspot_captured_minor_units",
    "Money captured (taken), in minor units, by currency and kind.",
    _MONEY_LABELS,
)
RELEASED = Counter(
    "parkspot_released_minor_units",
    "Money held on cards and let go (a hold cancelled, or the rest of a partial "
    "capture), in minor units, by currency and kind.",
    _MONEY_LABELS,
)
REFUNDED = Counter(
    "parkspot_refunded_minor_units",
    "Money given back after it was captured, in minor units, by currency and kind.",
    _MONEY_LABELS,
)
STRIPE_CALLS = Counter(
    "parkspot_stripe_requests",
    "Calls to Stripe by call and result: ok, declined, unknown (no answer, 5xx, rate "
    "limited), refused, error (anything else).",
    ["call", "result"],
)
STRIPE_SECONDS = Histogram(
    "parkspot_stripe_request_seconds",
    "How long calls to Stripe took, by call.",
    ["call"],
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0),
)

for _operation in ("authorise", "capture", "cancel", "refund"):
    for _outcome in ("succeeded", "failed", "unknown"):
        OPERATIONS.labels(_operation, _outcome)  # shown at 0 before the first one


@dataclass(frozen=True)
class Money:
    """What a payment row says about money, before a change."""

    status: str
    authorised: int
    captured: int
    refunded: int

    @classmethod
    def of(cls, payment: Payment) -> Money:
        return cls(
            status=payment.status,
            authorised=payment.amount_authorised,
            captured=payment.amount_captured,
            refunded=payment.amount_refunded,
        )


def money_moved(before: Money, payment: Payment) -> None:
    """Inside the transaction that saved `payment`: count what moved since `before`,
    once it commits."""
    labels = (payment.currency, payment.kind)
    count_on_commit(AUTHORISED.labels(*labels), payment.amount_authorised - before.authorised)
    count_on_commit(CAPTURED.labels(*labels), payment.amount_captured - before.captured)
    count_on_commit(REFUNDED.labels(*labels), payment.amount_refunded - before.refunded)
    if before.status == Payment.Status.AUTHORISED and payment.status in (
        Payment.Status.CAPTURED,
        Payment.Status.CANCELED,
    ):
        released = payment.amount_authorised - payment.amount_captured
        count_on_commit(RELEASED.labels(*labels), released)


def operation_finished(*, operation: str, error_code: str | None) -> None:
    """Inside the transaction that records the outcome: counted when it commits."""
    if error_code is None:
        count_on_commit(OPERATIONS.labels(operation, "succeeded"))
        return
    count_on_commit(OPERATIONS.labels(operation, "failed"))
    count_on_commit(FAILURES.labels(operation, error_code[:64]))


def operation_unknown(*, operation: str) -> None:
    """Stripe did not answer: nothing was recorded, the claim stays for the retry job."""
    OPERATIONS.labels(operation, "unknown").inc()


def stripe_called(*, call: str, result: str, seconds: float) -> None:
    name = call.replace(" ", "_")
    STRIPE_CALLS.labels(name, result).inc()
    STRIPE_SECONDS.labels(name).observe(seconds)


# --- facts of the database, read when /metrics is asked ---------------------------------------


def facts(now: datetime) -> Iterator[GaugeMetricFamily]:
    """One query on the partial index of payments with an operation under way."""
    open_operations = (
        Payment.objects.exclude(operation="")
        .values("operation")
        .annotate(
            unresolved=Count("pk", filter=Q(operation_retry_at__lte=now)),
            oldest_due=Min("operation_retry_at", filter=Q(operation_retry_at__lte=now)),
        )
        .order_by()
    )
    unresolved = GaugeMetricFamily(
        "parkspot_payment_operations_unresolved",
        "Payment operations whose outcome is not known yet, past their first minute "
        "(Stripe did not answer): the retry job is finishing them.",
        labels=["operation"],
    )
    counts = dict.fromkeys(("authorise", "capture", "cancel", "refund"), 0)
    oldest_due = None
    for row in open_operations:
        counts[row["operation"]] = row["unresolved"]
        if row["oldest_due"] is not None:
            oldest_due = min(oldest_due or row["oldest_due"], row["oldest_due"])
    for operation, count in counts.items():
        unresolved.add_metric([operation], count)
    yield unresolved
    yield sweeps_overdue({"retry_payment_operations": seconds_late(now, oldest_due)})
