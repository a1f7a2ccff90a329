"""Partner webhooks' data (registered in the lots app: an endpoint belongs to a lot)."""

from __future__ import annotations

from django.db import models

# The events a partner may subscribe to (reservations/services/webhooks.py makes them).
EVENT_TYPES = (
    "reservation.created",
    "reservation.confirmed",
    "reservation.cancelled",
    "reservation.arrived",
    "reservation.left",
    "reservation.no_show",
)
# Sent by staff from the admin ("send test event"), whatever the endpoint subscribes to.
TEST_EVENT_TYPE = "webhook.test"
EVENT_TYPE_CHOICES = [(name, name) for name in EVENT_TYPES]


class WebhookEndpoint(models.Model):
    """A partner's receiver for one lot's events."""

    lot = models.ForeignKey("lots.Lot", on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(
        max_length=500,
        help_text="HTTPS address that receives the events as signed JSON POSTs.",
    )
    description = models.CharField(max_length=120, blank=True, help_text="e.g. ParkWhiz.")
    # Kept in clear: every delivery is signed with it (a hash could not sign).
    secret = models.CharField(max_length=80, editable=False)
    event_types = models.JSONField(
        default=list, help_text="Event types sent to this endpoint (empty: none)."
    )
    is_active = models.BooleanField(default=True, help_text="Off: no new events are sent.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["lot", "url"]
        verbose_name = "webhook endpoint"
        constraints = [
            models.UniqueConstraint(fields=["lot", "url"], name="webhook_endpoint_url_unique"),
        ]
        indexes = [
            models.Index(
                fields=["lot"], condition=models.Q(is_active=True), name="webhook_endpoint_active"
            )
        ]

    def __str__(self) -> str:
        return f"{self.lot}: {self.url}"

    def wants(self, event_type: str) -> bool:
        return event_type in (self.event_types or [])


class WebhookDelivery(models.Model):
    """One event for one endpoint: sent until the endpoint answers 2xx, with
    backoff, or given up after WEBHOOK_MAX_ATTEMPTS (then staff may retry it)."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The same for every endpoint and every attempt: receivers deduplicate on it.
    event_id = models.CharField(max_length=40)
    event_type = models.CharField(max_length=40)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When it is next due; while an attempt is under way, when that attempt's
    # claim lapses (a worker that died mid-attempt: another sends it again).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # An event is enqueued once per endpoint, however many dispatchers run.
            models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_delivery_once"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "delivered", "failed"]),
                name="webhook_delivery_status_valid",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            ),
            models.Index(fields=["endpoint", "-created_at"], name="webhook_delivery_log"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.endpoint_id} ({self.status})"


class WebhookStream(models.Model):
    """How far a source of events (an outbox table) has been read: the last id
    taken, and the ids below it not seen yet (a transaction that had taken its
    id but not committed when the table was read), each with when it was first
    missed, re-read until WEBHOOK_GAP_SECONDS have passed."""

    name = models.CharField(max_length=64, unique=True)
    last_id = models.BigIntegerField(default=0)
    gaps = models.JSONField(default=dict, blank=True)  # {"<id>": "<first missed, ISO>"}
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.last_id}"
