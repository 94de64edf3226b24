"""Human verdicts join an evaluation when they arrive: the annotation app records judgements through
its own services, so this app listens for human judgements saved or undone on evaluation comparisons
and asks a worker to recompute that evaluation's win rates and the leaderboard. The refit is
debounced: a burst of verdicts (annotators at work on an evaluation) gives one refit per
EVALUATION_REFRESH_DELAY_SECONDS, run after the window closes so that it sees every verdict of it."""
from functools import cache

import redis
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webapp.annotation.models import Comparison, Judgement, JudgementSource
from webapp.evaluation.services import RESULTS_TASK


@receiver(post_save, sender=Judgement, dispatch_uid="evaluation-human-verdict")
@receiver(post_delete, sender=Judgement, dispatch_uid="evaluation-human-verdict-undone")
def human_verdict_changed(sender, instance: Judgement, **kwargs):
    """A human verdict was recorded, changed or undone on an evaluation comparison."""
    if instance.source != JudgementSource.HUMAN:
        return
    if Judgement.comparison.is_cached(instance):  # the annotation services hand over the locked row
        evaluation_id = instance.comparison.evaluation_id
    else:
        evaluation_id = Comparison.objects.filter(pk=instance.comparison_id).values_list("evaluation_id", flat=True).first()
    if evaluation_id is not None:
        transaction.on_commit(lambda: evaluation_refresh_debounced(evaluation_id))


@cache
def _redis():
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def evaluation_refresh_debounced(evaluation_id: int) -> bool:
    """Schedules one refit of the evaluation's results unless one is already pending; True when it
    scheduled one. Called after the verdict's transaction commits. The Redis key lives exactly
    the delay and the task's countdown starts after the key was set, so the task runs after the key
    is gone: a verdict that found the key committed before the task reads the database."""
    delay = settings.EVALUATION_REFRESH_DELAY_SECONDS
    if not _redis().set(f"distillery:evaluation-refresh:{evaluation_id}", 1, nx=True, px=int(delay * 1000)):
        return False
    from webapp.celery import app

    app.send_task(RESULTS_TASK, args=(evaluation_id,), countdown=delay)
    return True
