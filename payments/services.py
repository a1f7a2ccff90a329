"""Every write about payments.

A call to Stripe is never made inside a transaction. Each operation runs in
three steps: claim it on the payment row (one short transaction, so a repeated
or concurrent request finds it taken and never calls Stripe twice; the amount
is computed there, from the locked row), call Stripe with an idempotency key
derived from the logical operation (so that repeating it, by anyone, is one
operation at Stripe), then record the outcome (another short transaction).
When the outcome is unknown (network failure), the claim stays in place with
its key, for a retry to finish.

Finishing is compare-and-set: it applies only while the row still carries the
claim it finishes. A slow call whose operation the retry job (or a webhook)
has finished meanwhile, or that a newer claim has replaced, changes nothing.
Statuses only move forward (see FORWARD).

What a caller can tell apart (the settlement of reservations relies on it):
payment_settle and payment_charge_saved_card raise only

- PaymentUnavailable (503), transient: Stripe could not be reached or did not
  answer, so the outcome is unknown. The claim stays for
  payment_operations_retry; try again later.
- PaymentInProgress (409), transient: another operation on the payment is in
  flight; try again shortly.
- PaymentFailed, permanent: trying again gets the same answer. PaymentDeclined
  (the card said no, e.g. an off-session charge), PaymentRefused (Stripe
  refused the operation, e.g. capturing a hold that lapsed; the payment row
  keeps Stripe's last_error_code), PaymentNotPossible (the payment's state does
  not allow it, e.g. settling for money a payment never made).

Besides these, only arguments that can never be right: NotFound (no such
payment) and InvalidInput (an amount out of range) — a bug in the caller.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from config.errors import ApplicationError, Conflict, InvalidInput, NotFound, PaymentFailed
from config.pruning import RUN_LIMIT, delete_oldest
from payments import gateway, metrics
from payments.models import Payment, PaymentAttempt, StripeCustomer, StripeEvent
from payments.signals import payment_changed

log = logging.getLogger(__name__)
# One line per payment operation's outcome, once it is recorded (config/logs.py).
events = structlog.stdlib.get_logger("parkspot.payments")

Status = Payment.Status
Outcome = PaymentAttempt.Outcome

RETRY_FIRST_AFTER = timedelta(minutes=1)
RETRY_MAX_DELAY = timedelta(hours=1)


class PaymentDeclined(PaymentFailed):
    code = "payment_declined"


class PaymentRefused(PaymentFailed):
    """Stripe refused the operation (not the card): permanent."""

    code = "payment_operation_failed"


class PaymentNotPossible(PaymentFailed):
    """The payment's state does not allow the operation: permanent."""

    code = "payment_not_possible"
    status = 409


class PaymentInProgress(Conflict):
    code = "payment_in_progress"


class PaymentUnavailable(ApplicationError):
    code = "payment_provider_unavailable"
    status = 503


# Where a status may go; a finish that would move a payment elsewhere leaves
# the status as it is.
FORWARD: dict[str, frozenset[str]] = {
    Status.REQUIRES_PAYMENT_METHOD: frozenset(
        {Status.FAILED, Status.AUTHORISED, Status.CAPTURED, Status.CANCELED}
    ),
    Status.FAILED: frozenset({Status.AUTHORISED, Status.CAPTURED, Status.CANCELED}),
    Status.AUTHORISED: frozenset({Status.CAPTURED, Status.CANCELED}),
    Status.CAPTURED: frozenset(),
    Status.CANCELED: frozenset(),
}


@dataclass(frozen=True)
class _Claim:
    """One operation taken on a payment row. `attempt` (the row's attempt
    counter when claimed) tells two claims with the same key apart."""

    payment: Payment
    operation: str
    key: str
    amount: int | None
    attempt: int

    @classmethod
    def of(cls, payment: Payment) -> _Claim:
        """The claim a row carries (for the retry job, which takes it over)."""
        return cls(
            payment=payment,
            operation=payment.operation,
            key=payment.operation_key,
            amount=payment.operation_amount,
            attempt=payment.attempts,
        )


@dataclass(frozen=True)
class _Finished:
    payment: Payment  # the row as it now is
    applied: bool  # False: the claim was no longer the row's; nothing changed


def payment_customer_ensure(*, user) -> str:
    """The user's Stripe Customer id, created on first use."""
    existing = (
        StripeCustomer.objects.filter(user=user).values_list("customer_id", flat=True).first()
    )
    if existing:
        return existing
    try:
        customer_id = gateway.customer_create(
            email=user.email, idempotency_key=f"customer:user:{user.pk}"
        )
    except gateway.GatewayError as exc:
        raise PaymentUnavailable("The payment service cannot be reached; try again.") from exc
    try:
        with transaction.atomic():
            StripeCustomer.objects.create(user=user, customer_id=customer_id)
    except IntegrityError:  # a concurrent request saved one first: use it
        return StripeCustomer.objects.get(user=user).customer_id
    return customer_id


def payment_cards_list(*, user) -> list[gateway.SavedCard]:
    """The cards saved on the user's Stripe Customer, to pay with in one tap.
    A user who never paid has none (and Stripe is not asked)."""
    customer_id = (
        StripeCustomer.objects.filter(user=user).values_list("customer_id", flat=True).first()
    )
    if not customer_id:
        return []
    try:
        return gateway.payment_methods_list(customer_id=customer_id)
    except gateway.GatewayError as exc:
        raise PaymentUnavailable("Your saved cards cannot be read right now; try again.") from exc


class SavedCardNotFound(NotFound):
    code = "payment_method_not_found"


# A Stripe PaymentMethod id, as our columns hold it.
PAYMENT_METHOD_ID = re.compile(r"pm_[A-Za-z0-9_]{1,250}")


def payment_card_check_id(payment_method_id: str) -> None:
    """Anything that cannot be a card's id is no saved card (and never reaches a query)."""
    if not PAYMENT_METHOD_ID.fullmatch(payment_method_id):
        raise SavedCardNotFound("You have no such saved card.")


def payment_card_remove(*, user, payment_method_id: str) -> None:
    """Take a saved card off the user's Customer: it is no longer offered nor
    chargeable. Another user's card, or an unknown one, is not found."""
    customer_id = (
        StripeCustomer.objects.filter(user=user).values_list("customer_id", flat=True).first()
    )
    payment_card_check_id(payment_method_id)
    if not customer_id:
        raise SavedCardNotFound("You have no such saved card.")
    try:
        owner = gateway.payment_method_customer(payment_method_id=payment_method_id)
    except gateway.GatewayError as exc:
        if exc.code == "resource_missing":
            raise SavedCardNotFound("You have no such saved card.") from exc
        raise PaymentUnavailable("The card cannot be removed right now; try again.") from exc
    if owner != customer_id:
        raise SavedCardNotFound("You have no such saved card.")
    try:
        # Detaching twice is harmless; a key per request (not per card) lets a
        # card saved again later be removed again.
        gateway.payment_method_detach(
            payment_method_id=payment_method_id,
            idempotency_key=f"{payment_method_id}:detach:{uuid.uuid4()}",
        )
    except gateway.GatewayError as exc:
        raise PaymentUnavailable("The card cannot be removed right now; try again.") from exc


def _payment_get_or_create(*, reference: str, user, amount: int, currency: str) -> Payment:
    with transaction.atomic():
        payment, _ = Payment.objects.get_or_create(
            reference=reference,
            kind=Payment.Kind.BOOKING,
            defaults={"user": user, "amount": amount, "currency": currency},
        )
    return payment


def payment_prepare(*, reference: str, user, amount: int, currency: str) -> Payment:
    """Make sure a booking can be paid for: a payment row, a Stripe Customer and a
    SetupIntent whose client secret lets a browser collect the card (Stripe.js).

    If Stripe cannot be reached, the payment is returned without a client secret;
    calling again later finishes the job.
    """
    payment = _payment_get_or_create(
        reference=reference, user=user, amount=amount, currency=currency
    )
    if payment.setup_client_secret or payment.status not in (
        Status.REQUIRES_PAYMENT_METHOD,
        Status.FAILED,
    ):
        return payment
    try:
        customer_id = payment_customer_ensure(user=user)
        intent_id, secret = gateway.setup_intent_create(
            customer_id=customer_id, idempotency_key=f"{reference}:setup:v1"
        )
    except (gateway.GatewayError, PaymentUnavailable) as exc:
        log.warning("Could not prepare payment %s: %s", reference, exc)
        return payment
    Payment.objects.filter(pk=payment.pk, setup_intent_id="").update(
        customer_id=customer_id, setup_intent_id=intent_id, setup_client_secret=secret
    )
    payment.refresh_from_db()
    return payment


def _operation_key(payment: Payment, operation: str, amount: int | None) -> str:
    """Stripe's idempotency key for an operation, derived from what it does, so
    that a repeat of the same logical operation (by anyone) is one at Stripe.
    An authorisation is per attempt: another card is another intent."""
    base = f"{payment.reference}:{payment.kind}:{operation}"
    if operation == "authorise":
        return f"{base}:{payment.attempts}"
    if operation == "capture":
        return f"{base}:{amount}"
    if operation == "refund":
        return f"{base}:{payment.amount_refunded}+{amount}"
    return base


def _claim(
    *,
    payment_id: int,
    operation: str,
    allowed: tuple[str, ...],
    plan: Callable[[Payment], int | None] | None = None,
    before: Callable[[Payment], None] | None = None,
) -> _Claim | None:
    """Take the payment for one Stripe operation, or return None if there is
    nothing to do: a status not `allowed`, or `plan` (the operation's amount,
    computed from the locked row; it may raise to refuse) returning None. A
    payment already taken raises PaymentInProgress."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.operation:
            raise PaymentInProgress("A payment operation is already under way; try again shortly.")
        if payment.status not in allowed:
            return None
        amount = plan(payment) if plan else None
        if plan and amount is None:
            return None
        if before:
            before(payment)
        if operation == "authorise":  # the last attempt's intent, if any, is in PaymentAttempt
            payment.payment_intent_id = ""
        payment.attempts += 1
        payment.operation = operation
        payment.operation_amount = amount
        payment.operation_key = _operation_key(payment, operation, amount)
        payment.operation_started_at = timezone.now()
        # If we never hear back, the retry job takes over from then.
        payment.operation_retry_at = payment.operation_started_at + RETRY_FIRST_AFTER
        payment.operation_retries = 0
        payment.save()
        return _Claim.of(payment)


def _finish(
    claim: _Claim,
    *,
    error: gateway.GatewayError | None = None,
    refunded: int = 0,
    attempt: PaymentAttempt | None = None,
    **changes,
) -> _Finished:
    """Record the outcome of the claimed operation, if the row still carries the
    claim. `refunded` is added to what the locked row says was refunded. The
    intent an authorisation created (`attempt`) is recorded in any case."""
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=claim.payment.pk)
        if attempt:
            attempt.payment = locked
            PaymentAttempt.objects.bulk_create([attempt], ignore_conflicts=True)
        if locked.operation_key != claim.key or locked.attempts != claim.attempt:
            log.info(
                "Not finishing %s %s of %s: its claim was finished or replaced meanwhile",
                claim.operation,
                claim.key,
                locked.reference,
            )
            return _Finished(payment=locked, applied=False)
        before = metrics.Money.of(locked)
        status = changes.pop("status", locked.status)
        if status != locked.status and status not in FORWARD[locked.status]:
            log.warning("Not moving %s from %s back to %s", locked.reference, locked.status, status)
            status = locked.status
        locked.status = status
        for field, value in changes.items():
            setattr(locked, field, value)
        locked.amount_refunded += refunded
        locked.operation = ""
        locked.operation_key = ""
        locked.operation_amount = None
        locked.operation_started_at = None
        locked.operation_retry_at = None
        locked.operation_retries = 0
        locked.last_error_code = error.code[:64] if error else ""
        locked.last_error_message = error.message[:500] if error else ""
        locked.save()
        # Counted once this record commits (config/metrics.py).
        metrics.money_moved(before, locked)
        metrics.operation_finished(
            operation=claim.operation, error_code=locked.last_error_code if error else None
        )
        _log_outcome(claim.operation, before, locked, failed=error is not None)
        transaction.on_commit(
            lambda: payment_changed.send(
                sender=Payment, reference=locked.reference, kind=locked.kind, status=locked.status
            )
        )
    return _Finished(payment=locked, applied=True)


# What each operation did, said as what happened to the money.
_DONE = {
    "authorise": "payment.authorised",
    "capture": "payment.captured",
    "cancel": "payment.released",
    "refund": "payment.refunded",
    "sync": "payment.synced",  # learned from Stripe (a webhook, reconciliation)
}


def _log_outcome(operation: str, before: metrics.Money, payment: Payment, *, failed: bool) -> None:
    """Inside the transaction that recorded the outcome: logged once it commits."""
    fields = {
        "reference": payment.reference,
        "kind": payment.kind,
        "operation": operation,
        "from_status": before.status,
        "to_status": payment.status,
        "currency": payment.currency,
        "authorised": payment.amount_authorised - before.authorised,
        "captured": payment.amount_captured - before.captured,
        "refunded": payment.amount_refunded - before.refunded,
        "released": (
            payment.amount_authorised - payment.amount_captured
            if before.status == Payment.Status.AUTHORISED
            and payment.status in (Payment.Status.CAPTURED, Payment.Status.CANCELED)
            else 0
        ),
        "payment_intent": payment.payment_intent_id or None,
    }
    if failed:
        fields["error_code"] = payment.last_error_code
        transaction.on_commit(lambda: events.warning("payment.failed", **fields), robust=True)
    else:
        event = _DONE.get(operation, f"payment.{operation}")
        transaction.on_commit(lambda: events.info(event, **fields), robust=True)


def _outcome_unknown(claim: _Claim) -> None:
    """Stripe did not answer: the claim stays, and the retry job asks it later."""
    metrics.operation_unknown(operation=claim.operation)
    events.warning(
        "payment.unknown",
        reference=claim.payment.reference,
        kind=claim.payment.kind,
        operation=claim.operation,
        amount=claim.amount,
        currency=claim.payment.currency,
    )


def _attempt(intent_id: str, outcome: str, error_code: str = "") -> PaymentAttempt:
    return PaymentAttempt(intent_id=intent_id, outcome=outcome, error_code=error_code[:64])


def _finish_paid(claim: _Claim, state: gateway.IntentState) -> Payment | None:
    """Record an authorisation whose intent holds or took the money; None if not."""
    if state.status == "requires_capture":
        return _finish(
            claim,
            attempt=_attempt(state.id, Outcome.AUTHORISED),
            status=Status.AUTHORISED,
            payment_intent_id=state.id,
            amount_authorised=state.amount,
        ).payment
    if state.status == "succeeded":
        return _finish(
            claim,
            attempt=_attempt(state.id, Outcome.CAPTURED),
            status=Status.CAPTURED,
            payment_intent_id=state.id,
            amount_authorised=state.amount,
            amount_captured=state.amount,
        ).payment
    return None


def _finish_failed(
    claim: _Claim,
    error: gateway.GatewayError,
    *,
    intent_id: str | None,
    outcome: str = Outcome.DECLINED,
) -> None:
    """Record a failed authorisation and the intent it left open at Stripe
    (waiting for another card), then cancel that intent, outside the
    transaction; if that fails, the retry job does it later."""
    attempt = _attempt(intent_id, outcome, error.code) if intent_id else None
    _finish(claim, error=error, status=Status.FAILED, attempt=attempt)
    if intent_id:
        payment_attempt_close(intent_id=intent_id)


def _failed_outcome(state: gateway.IntentState) -> str:
    return Outcome.REQUIRES_ACTION if state.status == "requires_action" else Outcome.DECLINED


def payment_attempt_close(*, intent_id: str) -> bool:
    """Cancel at Stripe the intent of a failed attempt, and record it. True once
    it is closed (also when Stripe had closed it already); False when Stripe
    cannot be reached or refuses, leaving canceled_at empty for the retry job
    and reconciliation."""
    try:
        gateway.payment_intent_cancel(intent_id=intent_id, idempotency_key=f"{intent_id}:cancel")
    except gateway.OutcomeUnknown as exc:
        log.warning("Could not cancel intent %s of a failed attempt: %s", intent_id, exc)
        return False
    except gateway.GatewayError as exc:
        try:  # refused: perhaps because it is closed already
            closed = gateway.payment_intent_retrieve(intent_id=intent_id).status == "canceled"
        except gateway.GatewayError:
            closed = False
        if not closed:
            log.warning("Could not cancel intent %s of a failed attempt: %s", intent_id, exc)
            return False
    PaymentAttempt.objects.filter(intent_id=intent_id, canceled_at__isnull=True).update(
        canceled_at=timezone.now()
    )
    return True


def payment_attempt_difference(*, intent_id: str) -> str:
    """How Stripe's view of a failed attempt's intent differs from ours ("" when
    it does not): still open there (payment_attempt_close fixes it), cancelled
    there but not in our record (likewise), or it went on to take money (not
    for us to fix)."""
    attempt = PaymentAttempt.objects.get(intent_id=intent_id)
    state = gateway.payment_intent_retrieve(intent_id=intent_id)
    if state.status == "canceled":
        return "" if attempt.canceled_at else "cancelled at Stripe, not in our record"
    if state.status.startswith("requires_"):
        return f"still open at Stripe ({state.status})"
    return f"{state.status} at Stripe, though it failed here"


def payment_authorise(
    *,
    reference: str,
    user,
    amount: int,
    currency: str,
    payment_method_id: str,
    capture_later: bool = True,
) -> Payment:
    """Pay for a booking with a card: a hold for the amount (capture_later), or
    a charge at once. Repeating it after success returns the payment unchanged."""
    if not payment_method_id.startswith("pm_"):
        raise InvalidInput(
            "payment_token must be a Stripe PaymentMethod id (pm_…).",
            code="invalid_payment_token",
            field="payment_token",
        )
    payment = _payment_get_or_create(
        reference=reference, user=user, amount=amount, currency=currency
    )
    if payment.status in (Status.AUTHORISED, Status.CAPTURED):
        return payment
    if payment.status == Status.CANCELED:
        raise Conflict("This payment was cancelled.", code="payment_canceled")

    customer_id = payment.customer_id or payment_customer_ensure(user=user)

    def before(p: Payment) -> None:
        p.payment_method_id = payment_method_id
        p.customer_id = customer_id
        p.capture_mode = (
            Payment.CaptureMode.MANUAL if capture_later else Payment.CaptureMode.IMMEDIATE
        )

    claim = _claim(
        payment_id=payment.pk,
        operation="authorise",
        allowed=(Status.REQUIRES_PAYMENT_METHOD, Status.FAILED),
        before=before,
    )
    if claim is None:  # settled between our read and the claim
        payment.refresh_from_db()
        return payment
    newly_saved = False
    try:
        newly_saved = gateway.payment_method_attach(
            payment_method_id=payment_method_id,
            customer_id=customer_id,
            idempotency_key=f"{claim.key}:attach",
        )
        state = gateway.payment_intent_create(
            amount=payment.amount,
            currency=payment.currency,
            customer_id=customer_id,
            payment_method_id=payment_method_id,
            capture_later=capture_later,
            off_session=False,
            metadata={"reference": reference, "kind": payment.kind},
            idempotency_key=claim.key,
        )
    except gateway.OutcomeUnknown as exc:
        # The claim stays: the retry job asks Stripe what happened.
        _outcome_unknown(claim)
        raise PaymentUnavailable("The payment service did not answer; try again shortly.") from exc
    except gateway.CardDeclined as exc:
        _finish_failed(claim, exc, intent_id=exc.intent_id)
        if newly_saved:
            _forget_card(payment_method_id)
        raise PaymentDeclined(exc.message) from exc
    except gateway.GatewayError as exc:
        if exc.code == "payment_method_not_yours":
            # Another driver's saved card: refused before any charge; the
            # payment waits for a card as it did, and keeps no trace of that one.
            _finish(claim, error=exc, payment_method_id="")
            raise InvalidInput(
                "This card is not one of yours: pay with a card of your own.",
                code="payment_method_not_yours",
                field="payment_token",
            ) from exc
        _finish(claim, error=exc, status=Status.FAILED)
        if exc.code == "resource_missing":
            raise InvalidInput(
                "There is no such payment method.",
                code="invalid_payment_token",
                field="payment_token",
            ) from exc
        raise PaymentDeclined(exc.message, code="payment_failed") from exc

    paid = _finish_paid(claim, state)
    if paid:
        return paid
    # requires_action (3-D Secure) and anything else we cannot finish here.
    error = gateway.CardDeclined(
        "This card needs an extra check that cannot be done here; try another card.",
        code="authentication_required",
    )
    _finish_failed(claim, error, intent_id=state.id, outcome=_failed_outcome(state))
    if newly_saved:
        _forget_card(payment_method_id)
    raise PaymentDeclined(error.message, code=error.code)


def _forget_card(payment_method_id: str) -> None:
    """A card saved only for a payment it failed is not kept (nor offered next time):
    best effort, after the failure is recorded; the driver can remove it if this fails."""
    try:
        gateway.payment_method_detach(
            payment_method_id=payment_method_id,
            idempotency_key=f"{payment_method_id}:detach:{uuid.uuid4()}",
        )
    except gateway.GatewayError as exc:
        log.warning("Could not forget declined card %s: %s", payment_method_id, exc)


def payment_settle(*, reference: str, amount: int, kind: str = Payment.Kind.BOOKING) -> Payment:
    """Keep exactly `amount` of what the payment took or holds; give back the rest.

    A hold is captured for `amount` (the rest released) or, for 0, cancelled; a
    charge made at booking is refunded down to `amount`. Idempotent: settling
    again to the same amount does nothing. Unpaid payments are just closed.
    """
    payment = Payment.objects.filter(reference=reference, kind=kind).first()
    if payment is None:
        raise NotFound("There is no such payment.", code="payment_not_found")
    if amount < 0 or amount > payment.amount:
        raise InvalidInput("Cannot settle for more than was paid.", code="invalid_amount")
    if payment.operation:  # early, without the row lock (the claim checks again under it)
        raise PaymentInProgress("A payment operation is already under way; try again shortly.")

    if payment.status in (Status.REQUIRES_PAYMENT_METHOD, Status.FAILED):
        if amount:
            raise PaymentNotPossible("Nothing was paid to settle from.", code="payment_not_made")
        with transaction.atomic():
            updated = Payment.objects.filter(
                pk=payment.pk,
                operation="",
                status__in=(Status.REQUIRES_PAYMENT_METHOD, Status.FAILED),
            ).update(status=Status.CANCELED)
        if not updated:
            return payment_settle(reference=reference, amount=amount, kind=kind)
        payment.refresh_from_db()
        return payment

    if payment.status == Status.AUTHORISED:
        claim = _claim(
            payment_id=payment.pk,
            operation="capture" if amount else "cancel",
            allowed=(Status.AUTHORISED,),
            plan=(lambda _: amount) if amount else None,
        )
        if claim is None:  # captured or released meanwhile: settle from there
            return payment_settle(reference=reference, amount=amount, kind=kind)
        return _run_settlement(claim)

    if payment.status == Status.CAPTURED:

        def excess(locked: Payment) -> int | None:
            # From the locked row: a refund that finished meanwhile counts.
            return locked.amount_net - amount if locked.amount_net > amount else None

        claim = _claim(
            payment_id=payment.pk, operation="refund", allowed=(Status.CAPTURED,), plan=excess
        )
        if claim is None:  # nothing (more) to give back
            payment.refresh_from_db()
            return payment
        return _run_settlement(claim)

    if payment.status == Status.CANCELED and amount == 0:
        return payment
    raise PaymentNotPossible(
        f"A {payment.get_status_display().lower()} payment cannot be settled so.",
        code="payment_state",
    )


def _run_settlement(claim: _Claim) -> Payment:
    intent_id = claim.payment.payment_intent_id
    try:
        if claim.operation == "capture":
            gateway.payment_intent_capture(
                intent_id=intent_id, amount=claim.amount, idempotency_key=claim.key
            )
            return _finish(claim, status=Status.CAPTURED, amount_captured=claim.amount).payment
        if claim.operation == "cancel":
            gateway.payment_intent_cancel(intent_id=intent_id, idempotency_key=claim.key)
            return _finish(claim, status=Status.CANCELED).payment
        if claim.operation == "refund":
            gateway.refund_create(
                intent_id=intent_id, amount=claim.amount, idempotency_key=claim.key
            )
            return _finish(claim, refunded=claim.amount).payment
    except gateway.OutcomeUnknown as exc:
        _outcome_unknown(claim)
        raise PaymentUnavailable("The payment service did not answer; it will be retried.") from exc
    except gateway.GatewayError as exc:
        finished = _finish(claim, error=exc)
        if not finished.applied:
            # Someone else finished this operation (the retry job repeating our
            # call): Stripe refusing our late duplicate says nothing about it.
            return finished.payment
        raise PaymentRefused(exc.message) from exc
    raise AssertionError(f"unknown operation {claim.operation}")


def payment_refund(*, reference: str, amount: int, kind: str = Payment.Kind.BOOKING) -> Payment:
    """Give back `amount` of what was captured (staff refunds): never more than kept."""
    payment = Payment.objects.filter(reference=reference, kind=kind).first()
    if payment is None:
        raise NotFound("There is no such payment.", code="payment_not_found")
    if amount <= 0:
        raise InvalidInput("Refund a positive amount.", code="invalid_amount", field="amount")

    def within_kept(locked: Payment) -> int:
        if amount > locked.amount_net:
            raise InvalidInput(
                f"At most {locked.amount_net} can be refunded.",
                code="refund_exceeds_captured",
                field="amount",
            )
        return amount

    claim = _claim(
        payment_id=payment.pk, operation="refund", allowed=(Status.CAPTURED,), plan=within_kept
    )
    if claim is None:
        raise Conflict("Only captured money can be refunded.", code="payment_not_captured")
    return _run_settlement(claim)


@dataclass(frozen=True)
class SyncResult:
    payment: Payment | None
    changes: dict
    # What differs from Stripe even with the changes made ("" when nothing):
    # forward-only syncing cannot mend it (Stripe refunded more than it kept).
    difference: str = ""


def payment_sync(*, payment_intent_id: str, apply: bool = True) -> SyncResult:
    """Bring our record of a PaymentIntent up to what Stripe says, forward only.

    Used by webhooks (whose payloads may come twice or out of order, so the
    intent is re-read rather than trusted) and by reconciliation. An intent we
    never heard back about (the call's outcome was unknown) is found by the
    reference in its metadata, if it holds or took money: one that did not is
    a failed attempt, and adopting it would end the claim of the payment's
    next attempt.
    """
    state = gateway.payment_intent_retrieve(intent_id=payment_intent_id)
    payment = Payment.objects.filter(payment_intent_id=payment_intent_id).first()
    if (
        payment is None
        and state.metadata.get("reference")
        and state.status in ("requires_capture", "succeeded")
    ):
        payment = Payment.objects.filter(
            reference=state.metadata["reference"],
            kind=state.metadata.get("kind", Payment.Kind.BOOKING),
            payment_intent_id="",
        ).first()
    if payment is None:
        return SyncResult(payment=None, changes={})
    changes = _forward_changes(payment, state)
    if not changes or not apply:
        synced = copy.copy(payment)
        for field, value in changes.items():
            setattr(synced, field, value)
        return SyncResult(payment=payment, changes=changes, difference=_difference(synced, state))
    with transaction.atomic():
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        changes = _forward_changes(locked, state)  # again, under the lock
        if "payment_intent_id" in changes:  # ours, though we never heard back
            adopted = _attempt(
                state.id,
                Outcome.AUTHORISED if state.status == "requires_capture" else Outcome.CAPTURED,
            )
            adopted.payment = locked
            PaymentAttempt.objects.bulk_create([adopted], ignore_conflicts=True)
        if changes:
            before = metrics.Money.of(locked)
            for field, value in changes.items():
                setattr(locked, field, value)
            locked.save()
            metrics.money_moved(before, locked)  # what Stripe did that we had not heard of
            _log_outcome("sync", before, locked, failed=False)
            transaction.on_commit(
                lambda: payment_changed.send(
                    sender=Payment,
                    reference=locked.reference,
                    kind=locked.kind,
                    status=locked.status,
                )
            )
    return SyncResult(payment=locked, changes=changes, difference=_difference(locked, state))


# Our statuses that agree with each of Stripe's (its others: an intent that never paid).
_AGREEING = {
    "requires_capture": (Status.AUTHORISED,),
    "succeeded": (Status.CAPTURED,),
    "canceled": (Status.CANCELED, Status.FAILED, Status.REQUIRES_PAYMENT_METHOD),
}


def _difference(payment: Payment, state: gateway.IntentState) -> str:
    """How our record differs from Stripe's intent ("" when it agrees)."""
    agreeing = _AGREEING.get(state.status, (Status.REQUIRES_PAYMENT_METHOD, Status.FAILED))
    if payment.status not in agreeing:
        return f"Stripe says {state.status}, we say {payment.status}"
    if state.status == "succeeded" and state.net_received != payment.amount_net:
        return f"Stripe kept {state.net_received}, we record {payment.amount_net}"
    return ""


def _forward_changes(payment: Payment, state: gateway.IntentState) -> dict:
    """What to change so that our record matches Stripe, never moving backwards."""
    changes: dict = {}
    if not payment.payment_intent_id:
        changes["payment_intent_id"] = state.id
    if state.status == "requires_capture" and payment.status in (
        Status.REQUIRES_PAYMENT_METHOD,
        Status.FAILED,
    ):
        changes.update(status=Status.AUTHORISED, amount_authorised=state.amount)
    elif state.status == "canceled" and payment.status == Status.AUTHORISED:
        changes.update(status=Status.CANCELED)  # the hold lapsed or was released at Stripe
    elif state.status == "succeeded":
        if payment.status != Status.CAPTURED:
            captured = min(state.captured, payment.amount)
            changes.update(
                status=Status.CAPTURED,
                amount_authorised=max(payment.amount_authorised, state.amount),
                amount_captured=captured,
                amount_refunded=min(max(captured - state.net_received, 0), captured),
            )
        elif state.net_received < payment.amount_net:
            # Refunded at Stripe (dashboard, dispute): count it, never un-refund.
            changes["amount_refunded"] = min(
                payment.amount_refunded + payment.amount_net - state.net_received,
                payment.amount_captured,
            )
    # Forward only can mean no move at all (Stripe refunded more than captured).
    changes = {field: value for field, value in changes.items() if getattr(payment, field) != value}
    if changes and payment.operation:
        # What the pending operation was waiting to learn is now known.
        changes.update(
            operation="",
            operation_key="",
            operation_amount=None,
            operation_started_at=None,
            operation_retry_at=None,
            operation_retries=0,
        )
    return changes


def stripe_event_record(*, event_id: str, type: str, object_id: str, payload: dict) -> bool:
    """Store a webhook event; False when it was already processed (a duplicate)."""
    with transaction.atomic():
        event, created = StripeEvent.objects.select_for_update().get_or_create(
            event_id=event_id, defaults={"type": type, "object_id": object_id, "payload": payload}
        )
        return created or event.processed_at is None


def stripe_event_mark_processed(*, event_id: str) -> None:
    StripeEvent.objects.filter(event_id=event_id, processed_at__isnull=True).update(
        processed_at=timezone.now()
    )


def stripe_events_prune(
    *, now: datetime | None = None, batch: int = 1000, limit: int = RUN_LIMIT
) -> int:
    """Forget the webhook events received more than STRIPE_EVENT_DAYS ago and
    processed (at most `limit` a run): they are kept to answer Stripe's
    redeliveries (for up to three days) as duplicates, and each holds its whole
    payload, a few kB, several a booking. Events never processed stay for staff
    to see. Returns how many were deleted."""
    before = (now or timezone.now()) - timedelta(days=settings.STRIPE_EVENT_DAYS)
    deleted = delete_oldest(
        StripeEvent,
        time_field="received_at",
        before=before,
        keep=Q(processed_at__isnull=True),
        batch=batch,
        limit=limit,
    )
    if deleted:
        log.info("Forgot %s Stripe events received before %s", deleted, before.isoformat())
    return deleted


def payment_charge_saved_card(
    *,
    reference: str,
    kind: str,
    amount: int,
    currency: str,
    card_from_kind: str,
    card_from_reference: str | None = None,
    capture_later: bool = False,
) -> Payment:
    """Charge, off-session, the card saved with the `card_from_kind` payment of
    `card_from_reference` (by default the same reference): e.g. an overstay, or an
    extension, on the booking's card. `capture_later` holds the amount instead
    (captured at settlement). Idempotent: one payment per (reference, kind),
    charged once."""
    source = Payment.objects.filter(
        reference=card_from_reference or reference, kind=card_from_kind
    ).first()
    if source is None or not source.payment_method_id:
        raise PaymentNotPossible("No saved card to charge.", code="no_saved_card")
    with transaction.atomic():
        payment, _ = Payment.objects.get_or_create(
            reference=reference,
            kind=kind,
            defaults={
                "user_id": source.user_id,
                "amount": amount,
                "currency": currency,
                "customer_id": source.customer_id,
                "payment_method_id": source.payment_method_id,
                "capture_mode": (
                    Payment.CaptureMode.MANUAL if capture_later else Payment.CaptureMode.IMMEDIATE
                ),
            },
        )
    claim = _claim(
        payment_id=payment.pk,
        operation="authorise",
        allowed=(Status.REQUIRES_PAYMENT_METHOD, Status.FAILED),
    )
    if claim is None:
        payment.refresh_from_db()
        return payment
    try:
        state = gateway.payment_intent_create(
            amount=payment.amount,
            currency=payment.currency,
            customer_id=payment.customer_id,
            payment_method_id=payment.payment_method_id,
            capture_later=payment.capture_mode == Payment.CaptureMode.MANUAL,
            off_session=True,
            metadata={"reference": reference, "kind": kind},
            idempotency_key=claim.key,
        )
    except gateway.OutcomeUnknown as exc:
        _outcome_unknown(claim)
        raise PaymentUnavailable("The payment service did not answer; it will be retried.") from exc
    except gateway.CardDeclined as exc:
        _finish_failed(claim, exc, intent_id=exc.intent_id)
        raise PaymentDeclined(exc.message) from exc
    except gateway.GatewayError as exc:
        _finish(claim, error=exc, status=Status.FAILED)
        raise PaymentRefused(exc.message) from exc
    paid = _finish_paid(claim, state)
    if paid:
        return paid
    error = gateway.CardDeclined("The saved card could not be charged.", code=state.status)
    _finish_failed(claim, error, intent_id=state.id, outcome=_failed_outcome(state))
    raise PaymentDeclined(error.message)


def payment_operations_retry(*, now: datetime | None = None, limit: int = 100) -> int:
    """Finish operations whose outcome was unknown (Stripe unreachable, a worker
    killed mid-call): ask Stripe what happened, and repeat the call with the same
    idempotency key only if it did not. Backs off exponentially per payment.
    Then cancel the intents of failed attempts that could not be cancelled at
    the time. Returns how many operations were finished."""
    now = now or timezone.now()
    due = list(
        Payment.objects.exclude(operation="")
        .filter(operation_retry_at__lte=now)
        .order_by("operation_retry_at")
        .values_list("pk", flat=True)[:limit]
    )
    finished = 0
    for payment_id in due:
        with transaction.atomic():
            payment = (
                Payment.objects.select_for_update(skip_locked=True)
                .filter(pk=payment_id, operation_retry_at__lte=now)
                .exclude(operation="")
                .first()
            )
            if payment is None:  # another worker has it, or it finished
                continue
            # Push the next try out first, so a crash here cannot spin.
            payment.operation_retries += 1
            delay = min(RETRY_FIRST_AFTER * 2**payment.operation_retries, RETRY_MAX_DELAY)
            payment.operation_retry_at = now + delay
            payment.save(update_fields=["operation_retries", "operation_retry_at", "updated_at"])
        claim = _Claim.of(payment)
        try:
            finished += _resolve(claim)
        except gateway.OutcomeUnknown as exc:
            _outcome_unknown(claim)
            log.warning("Retry of %s %s failed: %s", payment.reference, payment.operation, exc)
        except gateway.GatewayError as exc:
            # Stripe refused: the operation is over. Ending the claim lets the
            # caller's next try get that answer instead of "in progress" forever.
            log.warning("Stripe refused %s of %s: %s", claim.operation, payment.reference, exc)
            failed = {"status": Status.FAILED} if claim.operation == "authorise" else {}
            _finish(claim, error=exc, **failed)
            finished += 1
    # Older than a minute: the decline handler has had its go.
    unclosed = (
        PaymentAttempt.objects.filter(
            outcome__in=PaymentAttempt.FAILED,
            canceled_at__isnull=True,
            created_at__lte=now - RETRY_FIRST_AFTER,
        )
        .order_by("created_at")
        .values_list("intent_id", flat=True)[:limit]
    )
    for intent_id in list(unclosed):
        finished += payment_attempt_close(intent_id=intent_id)
    return finished


def _resolve(claim: _Claim) -> int:
    payment, op, key, amount = claim.payment, claim.operation, claim.key, claim.amount
    if op == "authorise":
        try:  # never heard back: Stripe returns the original for the same key
            state = gateway.payment_intent_create(
                amount=payment.amount,
                currency=payment.currency,
                customer_id=payment.customer_id,
                payment_method_id=payment.payment_method_id,
                capture_later=payment.capture_mode == Payment.CaptureMode.MANUAL,
                off_session=payment.kind != Payment.Kind.BOOKING,
                metadata={"reference": payment.reference, "kind": payment.kind},
                idempotency_key=key,
            )
        except gateway.CardDeclined as exc:
            _finish_failed(claim, exc, intent_id=exc.intent_id)
            return 1
        if not _finish_paid(claim, state):
            error = gateway.CardDeclined("The card was not authorised.", code=state.status)
            _finish_failed(claim, error, intent_id=state.id, outcome=_failed_outcome(state))
        return 1
    state = gateway.payment_intent_retrieve(intent_id=payment.payment_intent_id)
    # Repeat the call unless Stripe shows it done; the gateway raises when
    # the intent's state no longer allows it (a lapsed hold, say).
    if op == "capture":
        if state.status != "succeeded":
            gateway.payment_intent_capture(
                intent_id=payment.payment_intent_id, amount=amount, idempotency_key=key
            )
        _finish(claim, status=Status.CAPTURED, amount_captured=amount)
        return 1
    if op == "cancel":
        if state.status != "canceled":
            gateway.payment_intent_cancel(intent_id=payment.payment_intent_id, idempotency_key=key)
        _finish(claim, status=Status.CANCELED)
        return 1
    if op == "refund":
        if state.net_received > payment.amount_net - amount:
            gateway.refund_create(
                intent_id=payment.payment_intent_id, amount=amount, idempotency_key=key
            )
        _finish(claim, refunded=amount)
        return 1
    return 0
