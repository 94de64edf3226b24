"""The Celery application. The web side uses it only to enqueue tasks by name (`send_task`);
workers/ registers the task bodies. Queues: `gpu` (generation, training, evaluation; concurrency 1)
and `default` (judging aggregates, imports, exports, the reaper)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("distillery")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = ("workers.tasks",)


def enqueue(task_name: str, *args, **kwargs) -> None:
    """Sends a task by name once the current transaction commits, so the worker finds the rows."""
    from django.db import transaction

    transaction.on_commit(lambda: app.send_task(task_name, args=args, kwargs=kwargs))
