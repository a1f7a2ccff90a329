"""Compare our payment records with Stripe and report (or fix forward) differences:
payments, and the intents of failed attempts (which must be cancelled there).

With --fix, each difference is fixed and then read back from Stripe: what still
differs is reported as "cannot fix" (forward-only syncing cannot undo, say, a
refund Stripe made beyond what it kept) and makes the command fail."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial

from django.core.management.base import BaseCommand
from django.db.models import Q

from payments import gateway
from payments.models import Payment, PaymentAttempt
from payments.services import payment_attempt_close, payment_attempt_difference, payment_sync


def _payment_difference(intent_id: str) -> str:
    result = payment_sync(payment_intent_id=intent_id, apply=False)
    parts = [
        f"{field}: {getattr(result.payment, field)!r} → {value!r}"
        for field, value in result.changes.items()
        if not field.startswith("operation")
    ]
    if result.difference:
        parts.append(result.difference)
    return ", ".join(parts)


class Command(BaseCommand):
    help = "Compare payments with Stripe; --fix brings our records forward to Stripe's."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--fix", action="store_true", help="Apply the differences found.")
        parser.add_argument(
            "--reference",
            help="Only this reference and those under it (<reference>/..., e.g. a "
            "booking's extensions).",
        )

    def handle(self, *args, fix: bool, reference: str | None, **kw) -> None:
        payments = Payment.objects.exclude(payment_intent_id="").order_by("pk")
        attempts = PaymentAttempt.objects.filter(outcome__in=PaymentAttempt.FAILED).order_by("pk")
        if reference:
            under = f"{reference}/"
            payments = payments.filter(Q(reference=reference) | Q(reference__startswith=under))
            attempts = attempts.filter(
                Q(payment__reference=reference) | Q(payment__reference__startswith=under)
            )
        tally: Counter[str] = Counter()
        for payment in payments.iterator():
            intent_id = payment.payment_intent_id
            outcome = self._reconcile(
                f"{payment.reference} ({payment.kind})",
                differs=partial(_payment_difference, intent_id),
                fix=partial(payment_sync, payment_intent_id=intent_id) if fix else None,
            )
            tally[outcome] += 1
        for attempt in attempts.select_related("payment").iterator():
            intent_id, payment = attempt.intent_id, attempt.payment
            outcome = self._reconcile(
                f"{payment.reference} ({payment.kind}) attempt {intent_id}",
                differs=partial(payment_attempt_difference, intent_id=intent_id),
                fix=partial(payment_attempt_close, intent_id=intent_id) if fix else None,
            )
            tally[outcome] += 1
        checked = sum(tally.values())
        found = (
            f"fixed {tally['fixed']}, unresolved {tally['unresolved']}"
            if fix
            else f"differing {tally['differs']}"
        )
        self.stdout.write(f"checked {checked}, {found}, unreachable {tally['unreachable']}")
        if tally["unreachable"] or tally["unresolved"] or tally["differs"]:
            raise SystemExit(1)

    def _reconcile(
        self, label: str, *, differs: Callable[[], str], fix: Callable[[], object] | None
    ) -> str:
        """Check one thing (and fix it, then read it back): what became of it."""
        try:
            difference = differs()
            if not difference:
                return "agrees"
            if fix is None:
                self.stdout.write(f"{label} differs: {difference}")
                return "differs"
            fix()
            remaining = differs()
        except gateway.GatewayError as exc:
            self.stderr.write(f"{label}: cannot read it from Stripe: {exc}")
            return "unreachable"
        if remaining:
            self.stdout.write(f"{label} cannot fix: {remaining}")
            return "unresolved"
        self.stdout.write(f"{label} fixed: {difference}")
        return "fixed"
