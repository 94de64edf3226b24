from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "webapp.evaluation"
    label = "evaluation"

    def ready(self):
        from webapp.evaluation import receivers  # noqa: F401  (connects the human-verdict listener)
