"""One log line per request, and a request id that follows the request everywhere.

The request id is the client's `X-Request-ID` when it is well formed (a load
balancer or a client that already has one: its logs and ours then agree), else
a new one. It is returned in the `X-Request-ID` response header, bound to every
line logged while the request is served (ours, Django's, Stripe's…), and
carried in a header of every Celery task the request queues, so that the
worker's lines for that task carry it too.

The request line (event "request") says who asked for what and what they got:
method, path (never the query string; URL parts that are tokens are masked),
view, status, duration_ms, user_id or gate_id, client_ip (config.net.client_ip,
so TRUSTED_PROXIES counts). Never headers, cookies or bodies.
"""

from __future__ import annotations

import re
import uuid
from time import perf_counter
from typing import Any

import structlog
from celery.signals import before_task_publish, task_postrun, task_prerun
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from config.logs import REDACTED
from config.net import client_ip

log = structlog.stdlib.get_logger("parkspot.request")
task_log = structlog.stdlib.get_logger("parkspot.task")

HEADER = "X-Request-ID"
TASK_HEADER = "parkspot_request_id"  # the Celery message header carrying it
# Long enough for any tracing id (UUIDs, AWS/Heroku/nginx ids), short and plain
# enough that nobody can write a line of their own into our logs through it.
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
# URL parts whose values are secrets (a sign-up or password reset link's token).
_SECRET_URL_KWARGS = re.compile(r"token|key|secret", re.IGNORECASE)
_MAX_PATH = 300


def request_id_from(value: str | None) -> str:
    """The client's id if it is well formed, else a new one."""
    if value and _WELL_FORMED.fullmatch(value):
        return value
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return structlog.contextvars.get_contextvars().get("request_id")


class RequestLogMiddleware:
    """Right after the metrics middleware: every answer passes through it, a 500
    included (Django has turned the exception into the response by then, and
    logged it, with the request id, from inside)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request.headers.get(HEADER))
        request.request_id = request_id
        # Whatever an earlier request on this thread bound is not ours. Bound
        # until the response is closed (request_finished below): Django logs a
        # 500 it could not render after every middleware has returned.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = perf_counter()
        response = self.get_response(request)
        response[HEADER] = request_id
        status = response.status_code
        (log.error if status >= 500 else log.info)(
            "request",
            method=request.method,
            path=_path(request),
            view=_view(request),
            status=status,
            duration_ms=round((perf_counter() - started) * 1000, 2),
            client_ip=client_ip(request),
            **_who(request),
        )
        return response


@receiver(request_finished, dispatch_uid="parkspot-request-id-finished")
def _request_finished(**kwargs: Any) -> None:
    structlog.contextvars.clear_contextvars()


def _path(request: HttpRequest) -> str:
    path = request.path
    match = getattr(request, "resolver_match", None)
    if match is not None:
        for name, value in match.kwargs.items():
            if _SECRET_URL_KWARGS.search(name) and isinstance(value, str) and value:
                path = path.replace(value, REDACTED)
    return path[:_MAX_PATH]


def _view(request: HttpRequest) -> str | None:
    match = getattr(request, "resolver_match", None)
    return match.view_name if match is not None else None


def _who(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's id, or the gate's, as far as the request already knows
    it (a session user nobody looked at is not loaded just for the log)."""
    who: dict[str, Any] = {"user_id": None}
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        user = None
    if user is not None and getattr(user, "is_authenticated", False):
        who["user_id"] = user.pk
    gate = getattr(request, "auth", None)  # DRF copies request.auth here
    if gate is not None and type(gate).__name__ == "GateDevice":
        who["gate_id"] = gate.pk
    return who


# --- into Celery tasks, and out again in the worker ----------------------------------------


@before_task_publish.connect(dispatch_uid="parkspot-request-id-publish")
def _request_id_into_task(headers: dict | None = None, **kwargs: Any) -> None:
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


# Per task id: the context tokens to restore when it ends, and its start.
_running: dict[str, tuple[dict, float]] = {}


@task_prerun.connect(dispatch_uid="parkspot-request-id-prerun")
def _request_id_from_task(task_id: str | None = None, task=None, **kwargs: Any) -> None:
    bound: dict[str, Any] = {"task": getattr(task, "name", None), "task_id": task_id}
    request = getattr(task, "request", None)
    # A worker makes the message's headers attributes of the task's request; a
    # task applied in-process (Task.apply) keeps them in request.headers.
    request_id = getattr(request, TASK_HEADER, None) or (
        getattr(request, "headers", None) or {}
    ).get(TASK_HEADER)
    if isinstance(request_id, str) and _WELL_FORMED.fullmatch(request_id):
        bound["request_id"] = request_id
    # Run eagerly (tests) the task is inside the request: its context is kept
    # and restored afterwards; in a worker, the previous task's is not inherited.
    tokens = structlog.contextvars.bind_contextvars(**bound)
    if task_id:
        _running[task_id] = (tokens, perf_counter())


@task_postrun.connect(dispatch_uid="parkspot-request-id-postrun")
def _task_finished(task_id: str | None = None, state: str | None = None, **kwargs: Any) -> None:
    tokens, started = _running.pop(task_id, (None, None)) if task_id else (None, None)
    if started is not None:
        task_log.info(
            "task_finished",
            state=state,
            duration_ms=round((perf_counter() - started) * 1000, 2),
        )
    if tokens:
        structlog.contextvars.reset_contextvars(**tokens)
