from tests.payments.stripe_proxy import stripe_proxy  # noqa: F401  (fixture)
