"""Application errors: what a service raises when a use case cannot go ahead.

Each carries a stable machine-readable `code` and the HTTP status the API and
website map it to, so that views stay thin and never turn a rule into a 500.
"""

from __future__ import annotations


class ApplicationError(Exception):
    code = "error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None):
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        self.field = field


class InvalidInput(ApplicationError):
    """The request cannot be valid whatever the state (400)."""

    code = "invalid"
    status = 400


class NotFound(ApplicationError):
    code = "not_found"
    status = 404


class Conflict(ApplicationError):
    """The request is valid but the current state does not allow it (409)."""

    code = "conflict"
    status = 409


class PaymentFailed(ApplicationError):
    code = "payment_failed"
    status = 402


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"
    status = 422
