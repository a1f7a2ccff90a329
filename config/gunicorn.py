"""gunicorn settings for production: `gunicorn -c config/gunicorn.py config.wsgi`.

gthread workers keep connections alive and overlap database waits; on the
2-core bench machine 3 workers x 4 threads served the most (bench/README.md).
"""

import multiprocessing
import os
import sys

# The `gunicorn` script does not put the project on the path before reading this file.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from config import logs

# Loopback unless told otherwise: in production a reverse proxy on the same
# host (or GUNICORN_BIND) decides what the world can reach.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
keepalive = 5
timeout = 30
graceful_timeout = 30
max_requests = 5000  # recycle workers now and then, jittered so they do not all restart at once
max_requests_jitter = 500
# No access log: the application logs one line per request itself, with its
# request id, user and view (config/request_log.py). gunicorn's error log (start,
# stop, workers booted, timed out or killed) goes out as every other line does
# (config/logs.py: LOG_FORMAT, LOG_LEVEL; a bad value stops gunicorn here).
accesslog = None
logconfig_dict = logs.logging_config(logs.log_format(), logs.log_level())
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")


# --- Metrics (config/metrics.py): one directory of counter files per run --------------------
# Every worker writes its counters to files in PROMETHEUS_MULTIPROC_DIR and
# /metrics, whichever worker answers it, adds them all up. The variable must be
# set before a worker imports prometheus_client (workers are forked after
# on_starting, and the app is not preloaded). Given one (`make run` shares its
# directory with the Celery worker, and empties it first), gunicorn uses it as
# it is; given none, gunicorn makes its own under var/metrics/, empty, and
# removes it when it stops.
_METRICS_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "var")
_owned_metrics_dir: str | None = None


def on_starting(server) -> None:
    global _owned_metrics_dir
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        return
    path = os.path.join(_METRICS_ROOT, "metrics", f"gunicorn-{os.getpid()}")
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):  # a pid used before: start from nothing
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    _owned_metrics_dir = path


def child_exit(server, worker) -> None:
    # A dead worker's counters still count; its live gauges must not.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    if _owned_metrics_dir:
        import shutil

        shutil.rmtree(_owned_metrics_dir, ignore_errors=True)
