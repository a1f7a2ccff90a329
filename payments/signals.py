"""How payments tell the rest of the project that a payment changed, without
knowing what it pays for: receivers get the opaque reference."""

from django.dispatch import Signal

# Sent after commit with: reference (str), kind (str), status (str).
payment_changed = Signal()
