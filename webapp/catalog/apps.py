"""The catalog app; its `loop_counts` feeds the project home (webapp/projects/selectors.py)."""
from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "webapp.catalog"
    label = "catalog"

    def loop_counts(self, project) -> dict:
        from webapp.catalog.models import ModelVersion, Prompt

        return {"prompts": Prompt.objects.filter(prompt_set__project=project).count(),
                "model_versions": ModelVersion.objects.filter(project=project).count()}
