"""gunicorn settings for production: `gunicorn -c config/gunicorn.py config.wsgi`.

gthread workers keep connections alive and overlap database waits; on the
2-core bench machine 3 workers x 4 threads served the most (bench/README.md).
"""

import multiprocessing
import os

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
accesslog = "-"
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
