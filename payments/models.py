"""Payments: what we asked Stripe to do and what it did, in minor units.

Payments know nothing of reservations: a payment belongs to an opaque
`reference` (e.g. "reservation:R7K2-9QXM") chosen by whoever asks for it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class StripeCustomer(models.Model):
    """The Stripe Customer that holds a user's saved cards."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stripe_customer"
    )
    customer_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.customer_id


class Payment(models.Model):
    class Kind(models.TextChoices):
        BOOKING = "booking", "Booking"
        OVERSTAY = "overstay", "Overstay"
        # More time bought for a booking, on the booking's saved card; one
        # payment per extension, each under its own reference.
        EXTENSION = "extension", "Extension"

    class Status(models.TextChoices):
        REQUIRES_PAYMENT_METHOD = "requires_payment_method", "Waiting for a card"
        FAILED = "failed", "Declined"
        AUTHORISED = "authorised", "Authorised (hold on the card)"
        CAPTURED = "captured", "Captured"
        CANCELED = "canceled", "Released"

    class CaptureMode(models.TextChoices):
        # Hold the amount on the card, take it when the stay is settled.
        MANUAL = "manual", "Authorise now, capture at settlement"
        # Card holds lapse after about a week: longer horizons are charged at
        # once and settled by refunding the difference.
        IMMEDIATE = "immediate", "Charge now, refund the difference at settlement"

    reference = models.CharField(max_length=64, help_text="Opaque: what this payment is for.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.BOOKING)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payments"
    )
    currency = models.CharField(max_length=3)
    amount = models.PositiveIntegerField(help_text="What is to be paid, in minor units.")
    amount_authorised = models.PositiveIntegerField(default=0)
    amount_captured = models.PositiveIntegerField(default=0)
    amount_refunded = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.REQUIRES_PAYMENT_METHOD
    )
    capture_mode = models.CharField(
        max_length=16, choices=CaptureMode.choices, default=CaptureMode.MANUAL
    )
    customer_id = models.CharField(max_length=255, blank=True)
    setup_intent_id = models.CharField(max_length=255, blank=True)
    setup_client_secret = models.CharField(max_length=255, blank=True)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    payment_method_id = models.CharField(max_length=255, blank=True)
    # A call to Stripe in flight (claimed in the database before the call, so a
    # concurrent or repeated request never makes a second one). Left set when
    # the outcome is unknown, for the retry job to finish with the same key.
    operation = models.CharField(max_length=32, blank=True)
    operation_key = models.CharField(max_length=255, blank=True)
    operation_amount = models.PositiveIntegerField(null=True, blank=True)
    operation_started_at = models.DateTimeField(null=True, blank=True)
    # Retries of an operation whose outcome was unknown, with backoff.
    operation_retries = models.PositiveIntegerField(default=0)
    operation_retry_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error_code = models.CharField(max_length=64, blank=True)
    last_error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reference", "kind"], name="payment_one_per_purpose"),
            models.CheckConstraint(
                condition=Q(amount_refunded__lte=F("amount_captured")),
                name="payment_refund_within_captured",
            ),
            models.CheckConstraint(
                condition=Q(amount_captured__lte=F("amount")),
                name="payment_capture_within_amount",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[a-z]{3}$"), name="payment_currency_iso"
            ),
            models.CheckConstraint(
                condition=Q(
                    status__in=[
                        "requires_payment_method",
                        "failed",
                        "authorised",
                        "captured",
                        "canceled",
                    ]
                ),
                name="payment_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["operation_retry_at"],
                condition=~Q(operation=""),
                name="payment_pending_operations",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.kind})"

    @property
    def amount_net(self) -> int:
        return self.amount_captured - self.amount_refunded


class PaymentAttempt(models.Model):
    """A PaymentIntent we created for a payment, whatever became of it.

    A payment row points only at the intent that paid; a card declined before
    it leaves an intent open at Stripe (waiting for another card) that must
    still be cancelled. Recording every intent lets the decline handler, the
    retry job and reconciliation find those.
    """

    class Outcome(models.TextChoices):
        AUTHORISED = "authorised", "Authorised"
        CAPTURED = "captured", "Charged"
        DECLINED = "declined", "Declined"
        REQUIRES_ACTION = "requires_action", "Needed a check we cannot do (3-D Secure)"

    # Outcomes whose intent we cancel at Stripe.
    FAILED = (Outcome.DECLINED, Outcome.REQUIRES_ACTION)

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="intent_attempts")
    intent_id = models.CharField(max_length=255, unique=True)
    outcome = models.CharField(max_length=32, choices=Outcome.choices)
    error_code = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    canceled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=Q(canceled_at__isnull=True, outcome__in=["declined", "requires_action"]),
                name="payment_attempt_to_cancel",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.intent_id} ({self.outcome})"


class StripeEvent(models.Model):
    """A webhook event, stored once by its id so that it is processed once."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=255, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    payload = models.JSONField(default=dict)

    class Meta:
        indexes = [
            # Staff find an event by what it is about (the admin's search).
            models.Index(
                fields=["object_id"], condition=~Q(object_id=""), name="stripe_event_object"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
