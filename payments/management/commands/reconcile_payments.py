"""Compare our payment records with Stripe and report (or fix forward) differences:
payments, and the intents of failed attempts (which must be cancelled there)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from payments import gateway
from payments.models import Payment, PaymentAttempt
from payments.services import payment_attempt_close, payment_attempt_difference, payment_sync


class Command(BaseCommand):
    help = "Compare payments with Stripe; --fix brings our records forward to Stripe's."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--fix", action="store_true", help="Apply the differences found.")
        parser.add_argument("--reference", help="Only this reference.")

    def handle(self, *args, fix: bool, reference: str | None, **kw) -> None:
        payments = Payment.objects.exclude(payment_intent_id="").order_by("pk")
        attempts = PaymentAttempt.objects.filter(outcome__in=PaymentAttempt.FAILED).order_by("pk")
        if reference:
            payments = payments.filter(reference=reference)
            attempts = attempts.filter(payment__reference=reference)
        checked = differing = unreachable = 0
        for payment in payments.iterator():
            checked += 1
            try:
                result = payment_sync(payment_intent_id=payment.payment_intent_id, apply=fix)
            except gateway.GatewayError as exc:
                unreachable += 1
                self.stderr.write(
                    f"{payment.reference}: cannot read {payment.payment_intent_id}: {exc}"
                )
                continue
            if result.changes:
                differing += 1
                verb = "fixed" if fix else "differs"
                details = ", ".join(
                    f"{field}: {getattr(payment, field)!r} → {value!r}"
                    for field, value in result.changes.items()
                    if not field.startswith("operation")
                )
                self.stdout.write(f"{payment.reference} ({payment.kind}) {verb}: {details}")
        for attempt in attempts.select_related("payment").iterator():
            checked += 1
            payment = attempt.payment
            label = f"{payment.reference} ({payment.kind}) attempt {attempt.intent_id}"
            try:
                difference = payment_attempt_difference(intent_id=attempt.intent_id)
            except gateway.GatewayError as exc:
                unreachable += 1
                self.stderr.write(f"{label}: cannot read it: {exc}")
                continue
            if difference:
                differing += 1
                if fix:
                    payment_attempt_close(intent_id=attempt.intent_id)
                self.stdout.write(f"{label} {'fixed' if fix else 'differs'}: {difference}")
        self.stdout.write(
            f"checked {checked}, {'fixed' if fix else 'differing'} {differing}, "
            f"unreachable {unreachable}"
        )
        if unreachable or (differing and not fix):
            raise SystemExit(1)
