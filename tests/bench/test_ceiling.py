"""The bench's ceiling (bench/ceiling) exists only in the bench server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import Resolver404, resolve

ROOT = Path(__file__).resolve().parents[2]


def test_the_ceiling_is_not_installed_or_routed_by_default():
    assert settings.BENCH_CEILING is False
    assert "bench.ceiling" not in settings.INSTALLED_APPS
    for path in ("/bench-ceiling/bookings", "/bench-ceiling/lots/x/rate"):
        with pytest.raises(Resolver404):
            resolve(path)


@pytest.mark.django_db
def test_asking_for_the_ceiling_by_default_is_a_plain_404(api):
    assert api.post("/bench-ceiling/bookings", {}, format="json").status_code == 404
    assert api.get("/bench-ceiling/lots/x/rate").status_code == 404


def test_bench_ceiling_1_installs_and_routes_it():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(BENCH_CEILING="1", DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING")
    code = (
        "import django; django.setup();"
        "from django.conf import settings; from django.urls import resolve;"
        "assert 'bench.ceiling' in settings.INSTALLED_APPS;"
        "print(resolve('/bench-ceiling/bookings').url_name,"
        " resolve('/bench-ceiling/lots/x/rate').url_name)"
    )
    out = subprocess.run(  # noqa: S603  (our own interpreter and code)
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["ceiling-book", "ceiling-read"]
