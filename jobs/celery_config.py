"""Celery's settings, read when Celery first needs them (not when jobs.celery_app is imported). The broker's
address is the hotline's setting (Settings.broker_url: CELERY_BROKER_URL or REDIS_URL), given by the web
side's dispatcher (jobs/dispatch.py) and the workers (jobs/celery_app.py)."""
task_ignore_result = True
task_serializer = "json"
accept_content = ["json"]
# A message is acknowledged only when its job has run, and handed to another worker if this one dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
task_default_queue = "hotline"
broker_connection_retry_on_startup = True
# Publishing from a webhook must not hang on a broker that is down: the job row is kept regardless.
broker_transport_options = {"visibility_timeout": 3600, "max_retries": 2, "interval_start": 0, "interval_step": 0.5}
worker_hijack_root_logger = False
