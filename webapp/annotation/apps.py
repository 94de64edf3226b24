"""The annotation app; its `loop_counts` feeds the project home (webapp/projects/selectors.py)."""
from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "webapp.annotation"
    label = "annotation"

    def loop_counts(self, project) -> dict:
        from webapp.annotation.events import counters
        from webapp.annotation.models import Judgement, PreferenceSnapshot

        comparisons = {k: v for k, v in counters(project.pk).items() if k != "event"}
        return {"comparisons": comparisons,
                "judgements": Judgement.objects.filter(comparison__project=project).count(),
                "snapshots": PreferenceSnapshot.objects.filter(project=project).count()}
