"""Limits on what costs us e-mails or accounts: sign-ups per client address,
password resets per client address, and e-mails about an account per e-mail
address (counted as config/limits.py says).

Client addresses come from config.net.client_ip, never from a header read here.
"""

from __future__ import annotations

from config.limits import Limit

SIGNUPS_PER_CLIENT = Limit("signup", "THROTTLE_SIGNUP_RATE")
PASSWORD_RESETS_PER_CLIENT = Limit("password-reset", "THROTTLE_PASSWORD_RESET_RATE")
EMAILS_PER_ADDRESS = Limit("account-email", "THROTTLE_ACCOUNT_EMAIL_RATE")
