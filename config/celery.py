"""The Celery app: tasks are autodiscovered from each app's tasks.py.

Run one worker (or more) and exactly ONE beat: two beats would each send every
scheduled job (harmless, since every task is safe to run twice, but wasteful).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("parkspot")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
