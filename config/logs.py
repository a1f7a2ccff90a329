"""How every ParkSpot process logs: one line per event, JSON or plain.

structlog renders both our own events (`structlog.get_logger(...).info("request",
status=200, ...)`) and every other library's standard-library records (Django,
Celery, gunicorn, Stripe) through one formatter, so that a line has the same
fields whoever wrote it: timestamp (UTC, ISO 8601), level, logger, event, and
whatever is bound to the context (the request id of the request or task the
line belongs to: config/request_log.py).

LOG_FORMAT picks the renderer: `json` (one JSON object per line, `make run` and
production) or `plain` (readable lines, `make dev`); LOG_LEVEL the threshold.
This module imports nothing of Django: gunicorn's master process reads it from
config/gunicorn.py before any Django setting is loaded.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import Any

import structlog

FORMATS = ("json", "plain")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Whatever a key by these names holds never reaches a line. Nothing of ours logs
# such a value on purpose: this is the net under a careless `log.info(..., token=…)`.
_SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|authori[sz]ation|cookie|session|card|cvc|api_?key|"
    r"gate_?key|key_hash|client_secret|payment_method|signature",
    re.IGNORECASE,
)
REDACTED = "[redacted]"


class LogSettingError(ValueError):
    """A bad LOG_FORMAT or LOG_LEVEL: the process must not start."""


def log_format(value: str | None = None) -> str:
    raw = os.environ.get("LOG_FORMAT", "json") if value is None else value
    chosen = raw.strip().lower()
    if chosen not in FORMATS:
        raise LogSettingError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {raw!r}.")
    return chosen


def log_level(value: str | None = None) -> str:
    raw = os.environ.get("LOG_LEVEL", "INFO") if value is None else value
    chosen = raw.strip().upper()
    if chosen not in LEVELS:
        raise LogSettingError(f"LOG_LEVEL must be one of {', '.join(LEVELS)}, not {raw!r}.")
    return chosen


@functools.lru_cache(maxsize=1024)
def _is_secret(key: str) -> bool:
    # Lines reuse a few dozen field names: each is matched once per process.
    return key != "event" and _SECRET_KEYS.search(key) is not None


def redact_secrets(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in event_dict:
        if _is_secret(key):
            event_dict[key] = REDACTED
    return event_dict


_FIRST = ("timestamp", "level", "event", "logger", "request_id")


def _fields_in_order(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # The same fields first on every line, for people reading them.
    ordered = {key: event_dict.pop(key) for key in _FIRST if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _drop_color_message(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict.pop("color_message", None)  # uvicorn-style duplicates, if any library adds one
    return event_dict


class ExceptionsOnly:
    """For django.request: its lines about an answer's status say what the request
    line says already; the ones carrying an exception (a 500's traceback) stay."""

    def filter(self, record: Any) -> bool:
        return record.exc_info is not None


# Run on every line, ours and other libraries' alike.
SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
]


def formatter(fmt: str) -> dict[str, Any]:
    """A logging.config formatter (a dict) rendering lines in `fmt`."""
    if fmt == "json":
        render = [
            # The traceback as text, never its frames' local variables (a view's
            # locals may hold a password).
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        render = [
            structlog.dev.ConsoleRenderer(
                colors=False, sort_keys=False, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": SHARED_PROCESSORS,
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_color_message,
            redact_secrets,
            _fields_in_order,
            *render,
        ],
    }


def logging_config(fmt: str, level: str) -> dict[str, Any]:
    """The LOGGING dict (logging.config.dictConfig) every process uses."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter(fmt)},
        "filters": {"exceptions_only": {"()": ExceptionsOnly}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Our own handlers only: Django's defaults would print 4xx and 5xx a
            # second time in DEBUG, in their own format.
            "django": {"handlers": [], "level": "INFO", "propagate": True},
            # Statuses are in the request line already; a 500 comes with its traceback.
            "django.request": {"level": "ERROR", "filters": ["exceptions_only"]},
            # runserver's own access line: ours replaces it.
            "django.server": {"handlers": [], "level": "WARNING", "propagate": True},
            "django.db.backends": {"level": "WARNING"},
            # A task's run is one line (config/request_log.py: task_finished, with
            # its request id, state and duration); Celery's "received" and
            # "succeeded" lines would say it twice more. Its errors still show.
            "celery.app.trace": {"level": "WARNING"},
            "celery.worker.strategy": {"level": "WARNING"},
            "stripe": {"level": "WARNING"},
            # gunicorn's error log through the same handler; its access log is off
            # (config/gunicorn.py): the request line replaces it.
            "gunicorn.error": {"handlers": ["console"], "level": level, "propagate": False},
            "gunicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure(fmt: str, level: str) -> dict[str, Any]:
    """Set structlog up (our own loggers) and return the LOGGING dict for the rest."""
    # Python's warnings (a library's deprecation, Celery's "running as root") as
    # lines like any other, not bare text among the JSON.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return logging_config(fmt, level)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
