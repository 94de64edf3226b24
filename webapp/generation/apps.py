"""The generation app; its `loop_counts` feeds the project home (webapp/projects/selectors.py)."""
from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "webapp.generation"
    label = "generation"

    def loop_counts(self, project) -> dict:
        from webapp.generation.models import Generation

        return {"generations": Generation.objects.filter(prompt__prompt_set__project=project).count()}
