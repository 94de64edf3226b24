from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "webapp.projects"
    label = "projects"

    def ready(self):
        from webapp.projects import permissions  # noqa: F401  (its signals clear cached memberships in every process)
