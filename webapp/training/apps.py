"""The training app; its `loop_counts` feeds the project home (webapp/projects/selectors.py)."""
from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "webapp.training"
    label = "training"

    def loop_counts(self, project) -> dict:
        from django.db.models import Count, Q

        from webapp.training.models import TrainingRun

        statuses = ("queued", "running", "succeeded", "failed")
        return {"runs": TrainingRun.objects.filter(project=project).aggregate(
            **{s: Count("id", filter=Q(status=s)) for s in statuses})}
