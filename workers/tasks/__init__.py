"""Celery task modules. Tasks on the `gpu` queue live in workers.tasks.gpu (routed by name);
everything else runs on the default queue."""
from workers import heartbeat  # noqa: F401  (connects the liveness signals)
from workers.tasks import maintenance  # noqa: F401
