"""The evaluation app; its `loop_counts` feeds the project home (webapp/projects/selectors.py)."""
from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "webapp.evaluation"
    label = "evaluation"

    def ready(self):
        from webapp.evaluation import receivers  # noqa: F401  (connects the human-verdict listener)

    def loop_counts(self, project) -> dict:
        from webapp.evaluation.models import Evaluation, LoopRound

        return {"evaluations": Evaluation.objects.filter(project=project).count(),
                "loop_rounds": LoopRound.objects.filter(project=project).count()}
