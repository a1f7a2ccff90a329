"""Payments (Stripe): added by the payments issue."""
