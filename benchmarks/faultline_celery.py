"""`celery --app benchmarks.faultline_celery worker`: the line's Celery worker (jobs/celery_app.py) with
the waits benchmarks/faultline.py shortens shortened here too (a call record's first delete, retries)."""
from benchmarks.faultline import shorten_waits

shorten_waits()

from jobs.celery_app import celery  # noqa: E402  (after the waits are shortened)

__all__ = ["celery"]
