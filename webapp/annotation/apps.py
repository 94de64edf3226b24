"""The annotation app; its `loop_counts` feeds the project home (webapp/projects/selectors.py)."""
from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "webapp.annotation"
    label = "annotation"

    def loop_counts(self, project) -> dict:
        from django.db.models import Sum

        from webapp.annotation.events import counters
        from webapp.annotation.models import PreferenceSnapshot, ProjectCounter

        comparisons = {k: v for k, v in counters(project.pk).items() if k != "event"}
        return {"comparisons": comparisons,
                "judgements": ProjectCounter.objects.filter(project=project).aggregate(n=Sum("judgements"))["n"] or 0,
                "snapshots": PreferenceSnapshot.objects.filter(project=project).count()}
