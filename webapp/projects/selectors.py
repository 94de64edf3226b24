"""Reads for projects: which projects a user sees, its members, and the loop's state for the project
home (gathered from each feature app, which owns its own counts)."""
from django.apps import apps

from webapp.projects.models import Membership, Project


def projects_for(*, user):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_members(*, project: Project):
    return Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username")


def project_loop_state(*, project: Project) -> dict:
    """Counts for each step of the loop (DESIGN.md) for the project home. Each feature app owns its
    counts (`loop_counts(project) -> dict` on its AppConfig), so this module imports none of their
    models: prompts and model versions (catalog), generations, comparisons / judgements / snapshots
    (annotation), runs by status (training), evaluations."""
    state = {}
    for config in apps.get_app_configs():
        counts = getattr(config, "loop_counts", None)
        if counts is not None:
            state.update(counts(project))
    return state
