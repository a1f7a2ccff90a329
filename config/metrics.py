"""/metrics: what an operator watches, in Prometheus's text format.

Three kinds of numbers, all named `parkspot_*` except django-prometheus's
request and database ones (`django_http_*`, `django_db_*`):

- counters moved where things happen: each app's `metrics.py` (reservations,
  payments) defines its own, and its services move them once their change has
  committed (transaction.on_commit), so that a rolled-back change is never counted;
- timings of requests (django-prometheus middleware), queries (its database
  backends), cache calls (config/cache.py), Stripe calls and Celery tasks;
- facts of the database (holds open, settlements needing attention, how far
  behind the sweeps are…), read when /metrics is asked, by each app's `facts()`
  in a fixed, small number of queries.

Under gunicorn (several worker processes) and beside a Celery worker on the
same machine, every process writes its counters to files in
PROMETHEUS_MULTIPROC_DIR and this view adds them up; without that directory
(tests, one process) it reads the process's own registry.

Who may read it: settings METRICS_ALLOWED_IPS and METRICS_TOKEN (settings.py).
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable
from time import perf_counter

from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from config.net import client_ip

log = logging.getLogger(__name__)


# --- counting once a change commits ---------------------------------------------------------


def count_on_commit(counter, amount: float = 1) -> None:
    """Move a counter (a labelled child) once the current transaction commits, at
    once outside one; a rolled-back change is not counted. `robust`: a failure to
    count is logged and never fails the committed change's request."""
    if amount == 1:
        transaction.on_commit(counter.inc, robust=True)
    elif amount > 0:
        transaction.on_commit(functools.partial(counter.inc, amount), robust=True)


def sweeps_overdue(overdue: dict[str, float]) -> GaugeMetricFamily:
    """parkspot_sweep_overdue_seconds for some of the scheduler's sweeps (each app
    knows its own; /metrics shows them as one family)."""
    family = GaugeMetricFamily(
        "parkspot_sweep_overdue_seconds",
        "How far behind each scheduled sweep is with its work: how long the oldest "
        "thing it should already have done has been waiting (0: nothing waiting). It "
        "grows when the sweep stops, and also when it runs but cannot keep up.",
        labels=["sweep"],
    )
    for sweep, seconds in overdue.items():
        family.add_metric([sweep], seconds)
    return family


def seconds_late(now, due) -> float:
    """How long ago `due` was (0 when it is not past, or None)."""
    return max((now - due).total_seconds(), 0.0) if due is not None else 0.0


# --- who may read it ------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _networks(allowed: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return tuple(ipaddress.ip_network(part, strict=False) for part in allowed)


def _address_allowed(request: HttpRequest) -> bool:
    allowed = tuple(settings.METRICS_ALLOWED_IPS)
    if not allowed:
        return bool(settings.METRICS_TOKEN)  # the token alone decides; neither: nobody
    try:
        address = ipaddress.ip_address(client_ip(request))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(allowed))


def _token_given(request: HttpRequest) -> bool:
    expected = settings.METRICS_TOKEN
    if not expected:
        return True
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), expected)


# --- requests -------------------------------------------------------------------------------


class RequestMetricsMiddleware:
    """First in MIDDLEWARE: each request's latency (all middleware included) by
    view and method, and each answer by status, view and method, in
    django-prometheus's metrics (django_http_requests_latency_seconds_by_view_method,
    django_http_responses_total_by_status_view_method_total). Its own pair of
    middleware update about a dozen metrics a request (43 µs on the bench
    machine); these two are what the dashboard reads (7 µs)."""

    def __init__(self, get_response):
        from django_prometheus.middleware import Metrics

        self.get_response = get_response
        metrics = Metrics.get_instance()
        self.latency = metrics.requests_latency_by_view_method
        self.responses = metrics.responses_by_status_view_method
        self.exceptions = metrics.exceptions_by_type

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match is not None else None) or "<unnamed view>"
        method = request.method if request.method in _METHODS else "<invalid method>"
        self.latency.labels(view, method).observe(perf_counter() - started)
        self.responses.labels(str(response.status_code), view, method).inc()
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        self.exceptions.labels(type(exception).__name__).inc()


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# --- the view -------------------------------------------------------------------------------


class _ProcessRegistry:
    """This process's own counters (no multiprocess directory: tests, one process)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class _DatabaseFacts:
    """Gauges that are facts of the database, read now (each app's facts())."""

    def collect(self) -> Iterable[Metric]:
        from payments.metrics import facts as payment_facts
        from reservations.metrics import facts as reservation_facts

        now = timezone.now()
        up = GaugeMetricFamily(
            "parkspot_facts_up", "1 when the database facts below could be read, 0 when not."
        )
        families: dict[str, Metric] = {}
        try:
            for family in [*reservation_facts(now), *payment_facts(now)]:
                if family.name in families:  # e.g. each app's sweeps' ages: one family
                    families[family.name].samples.extend(family.samples)
                else:
                    families[family.name] = family
        except DatabaseError as exc:
            log.warning("metrics: the database facts could not be read: %s", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families.values()]


def registry() -> CollectorRegistry:
    """Everything /metrics shows: all processes' counters, and the database facts."""
    combined = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(combined)
    else:
        combined.register(_ProcessRegistry())
    combined.register(_DatabaseFacts())
    return combined


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    # The same bare answer for a wrong address and a wrong token: nothing to learn.
    if not (_address_allowed(request) and _token_given(request)):
        return HttpResponse(status=403, content_type="text/plain")
    if request.method not in ("GET", "HEAD"):
        return HttpResponse(status=405, headers={"Allow": "GET, HEAD"})
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)


# --- Celery tasks (the scheduler's sweeps, e-mails) ----------------------------------------

TASK_RUNS = Counter(
    "parkspot_task_runs", "Celery tasks run, by task and state (SUCCESS, FAILURE, RETRY…).",
    ["task", "state"],
)  # fmt: skip
TASK_SECONDS = Histogram(
    "parkspot_task_seconds",
    "How long Celery tasks took, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
TASK_LAST_SUCCESS = Gauge(
    "parkspot_task_last_success_timestamp_seconds",
    "When each Celery task last finished without error (Unix time): "
    "time() minus this is how long ago the scheduler last did it.",
    ["task"],
    multiprocess_mode="max",  # the latest of every worker process, living or not
)

_started: dict[str, float] = {}


@task_prerun.connect(dispatch_uid="parkspot-metrics-task-prerun")
def _task_started(task_id: str | None = None, **kwargs) -> None:
    if task_id:
        _started[task_id] = perf_counter()


@task_postrun.connect(dispatch_uid="parkspot-metrics-task-postrun")
def _task_finished(
    task_id: str | None = None, task=None, state: str | None = None, **kwargs
) -> None:
    name = getattr(task, "name", None) or "unknown"
    started = _started.pop(task_id, None) if task_id else None
    if started is not None:
        TASK_SECONDS.labels(name).observe(perf_counter() - started)
    TASK_RUNS.labels(name, state or "UNKNOWN").inc()
    if state == "SUCCESS":
        TASK_LAST_SUCCESS.labels(name).set_to_current_time()
