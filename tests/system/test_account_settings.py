"""The account-security settings refuse a bad value at start-up, naming it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.limits import Rate, parse_rate

ROOT = Path(__file__).resolve().parents[2]


def _check(**overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**os.environ, **overrides},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("THROTTLE_SIGNUP_RATE", "lots", "must be a rate like 20/hour, 5/min or 3/10min"),
        ("THROTTLE_PASSWORD_RESET_RATE", "0/hour", "must be a rate like 20/hour"),
        ("THROTTLE_ACCOUNT_EMAIL_RATE", "5 per hour", "must be a rate like 20/hour"),
        ("LOGIN_FAILURE_LIMIT", "0", "must be at least 1, not 0"),
        ("LOGIN_COOLOFF_MINUTES", "a while", "must be a whole number"),
        ("API_TOKEN_LIFETIME_DAYS", "0", "must be at least 1, not 0"),
        ("SIGNUP_CONFIRM_HOURS", "-3", "must be at least 1, not -3"),
    ],
)
def test_a_bad_value_refuses_to_start_and_names_the_variable(name, value, says):
    result = _check(**{name: value})
    assert result.returncode != 0
    assert f"{name} {says}" in result.stderr


def test_good_values_start():
    result = _check(
        THROTTLE_SIGNUP_RATE="100/day",
        THROTTLE_PASSWORD_RESET_RATE="3/10min",
        LOGIN_FAILURE_LIMIT="5",
        API_TOKEN_LIFETIME_DAYS="7",
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("20/hour", Rate(20, 3600)),
        ("5/min", Rate(5, 60)),
        ("3/10min", Rate(3, 600)),
        ("100/day", Rate(100, 86400)),
        ("1/s", Rate(1, 1)),
        (" 20 / hours ", Rate(20, 3600)),
    ],
)
def test_rates_read_as_a_count_per_period(text, rate):
    assert parse_rate(text) == rate
