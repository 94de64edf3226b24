"""The generation app; its `loop_counts` feeds the project home (webapp/projects/selectors.py)."""
from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "webapp.generation"
    label = "generation"

    def loop_counts(self, project) -> dict:
        from django.db.models import Sum

        from webapp.generation.models import GenerationCounter

        # maintained by triggers (migration 0005): 16 rows, not a count of every generation
        return {"generations": GenerationCounter.objects.filter(project=project).aggregate(n=Sum("generations"))["n"] or 0}
