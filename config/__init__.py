from config import checks  # noqa: F401  (registers ParkSpot's deploy checks)
from config.celery import app as celery_app

__all__ = ("celery_app",)
