"""Human verdicts join an evaluation when they arrive: the annotation app records judgements through
its own services, so this app listens for human judgements saved or undone on evaluation comparisons
and asks a worker to recompute that evaluation's win rates (after the judgement's transaction commits)."""
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from webapp.annotation.models import Comparison, Judgement, JudgementSource
from webapp.evaluation.services import evaluation_results_refresh_later


@receiver(post_save, sender=Judgement, dispatch_uid="evaluation-human-verdict")
@receiver(post_delete, sender=Judgement, dispatch_uid="evaluation-human-verdict-undone")
def human_verdict_changed(sender, instance: Judgement, **kwargs):
    """A human verdict was recorded, changed or undone on an evaluation comparison."""
    if instance.source != JudgementSource.HUMAN:
        return
    evaluation_id = Comparison.objects.filter(pk=instance.comparison_id).values_list("evaluation_id", flat=True).first()
    if evaluation_id is not None:
        evaluation_results_refresh_later(evaluation_id=evaluation_id)
