"""The Celery app: tasks are autodiscovered from each app's tasks.py.

Run one worker (or more) and exactly ONE beat: two beats would each send every
scheduled job (harmless, since every task is safe to run twice, but wasteful).
"""

import logging.config
import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("parkspot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# A task carries the request id of the request that queued it (config/request_log.py).
import config.request_log  # noqa: E402, F401


@setup_logging.connect(dispatch_uid="parkspot-celery-logging")
def _log_like_django(**kwargs) -> None:
    """Worker and beat log through settings.LOGGING (config/logs.py: LOG_FORMAT,
    LOG_LEVEL), as the web server does, instead of Celery's own format."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
