"""Human verdicts join an evaluation when they arrive: the annotation app records judgements through
its own services, so this app listens for new human judgements on evaluation comparisons and asks a
worker to recompute that evaluation's win rates (after the judgement's transaction commits)."""
from django.db.models.signals import post_save
from django.dispatch import receiver

from webapp.annotation.models import Judgement, JudgementSource
from webapp.evaluation.services import evaluation_results_refresh_later


@receiver(post_save, sender=Judgement, dispatch_uid="evaluation-human-verdict")
def human_verdict_saved(sender, instance: Judgement, **kwargs):
    if instance.source != JudgementSource.HUMAN:
        return
    evaluation_id = instance.comparison.evaluation_id
    if evaluation_id is not None:
        evaluation_results_refresh_later(evaluation_id=evaluation_id)
