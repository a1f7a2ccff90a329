"""A bad setting stops the process at start-up with the variable's name, instead
of quietly meaning something else (an unknown LATE_CANCEL_POLICY used to mean
"refund")."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        ("LATE_CANCEL_POLICY", "refnud", "must be one of charge, elapsed, refund, not 'refnud'"),
        ("HOLD_TTL_MINUTES", "fifteen", "must be a whole number, not 'fifteen'"),
        ("HOLD_TTL_MINUTES", "0", "must be at least 1, not 0"),
        ("CARD_HOLD_MAX_DAYS", "-1", "must be at least 1, not -1"),
        ("OVERSTAY_LOOKAHEAD_MINUTES", "1.5", "must be a whole number"),
        ("LOG_FORMAT", "xml", "must be one of json, plain, not 'xml'"),
        ("LOG_LEVEL", "loud", "must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'loud'"),
    ],
)
def test_a_bad_value_refuses_to_start_and_names_the_variable(name, value, says):
    result = _check(**{name: value})
    assert result.returncode != 0
    assert f"{name} {says}" in result.stderr


def test_good_values_start():
    result = _check(LATE_CANCEL_POLICY="elapsed", HOLD_TTL_MINUTES="20")
    assert result.returncode == 0, result.stderr
