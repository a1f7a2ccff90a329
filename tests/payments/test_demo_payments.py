"""seed_demo's payments (pi_demo_…) never reached Stripe: settling them is
bookkeeping, except with a live key, where Stripe is asked as for any other."""

import pytest

from payments import gateway


def test_a_demo_hold_is_captured_released_and_refunded_without_stripe(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_parkspot"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"  # nothing listens: any call would fail

    captured = gateway.payment_intent_capture(
        intent_id="pi_demo_abc", amount=1200, idempotency_key="k1"
    )
    released = gateway.payment_intent_cancel(intent_id="pi_demo_def", idempotency_key="k2")
    refund_a = gateway.refund_create(intent_id="pi_demo_abc", amount=200, idempotency_key="k3")
    refund_b = gateway.refund_create(intent_id="pi_demo_abc", amount=100, idempotency_key="k4")

    assert (captured.status, captured.captured) == ("succeeded", 1200)
    assert released.status == "canceled"
    assert refund_a.startswith("re_demo_")
    assert refund_a != refund_b


def test_with_a_live_key_a_demo_intent_is_stripes_to_answer(settings):
    settings.STRIPE_SECRET_KEY = "sk_live_parkspot"
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    settings.STRIPE_MAX_NETWORK_RETRIES = 0

    with pytest.raises(gateway.OutcomeUnknown):
        gateway.payment_intent_capture(intent_id="pi_demo_abc", amount=1200, idempotency_key="k")
