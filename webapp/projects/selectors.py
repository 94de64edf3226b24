"""Reads for projects: which projects a user sees, and the loop's state for the project home."""
from django.db.models import Count, Q

from webapp.projects.models import Membership, Project


def projects_for(*, user):
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user).distinct()


def project_members(*, project: Project):
    return Membership.objects.filter(project=project).select_related("user").order_by("role", "user__username")


def project_loop_state(*, project: Project) -> dict:
    """Counts for each step of the loop (DESIGN.md): prompts, generations, comparisons, judgements,
    snapshots, runs, model versions, evaluations."""
    from webapp.annotation.models import Comparison, ComparisonStatus, Judgement, PreferenceSnapshot
    from webapp.catalog.models import ModelVersion, Prompt
    from webapp.evaluation.models import Evaluation
    from webapp.generation.models import Generation
    from webapp.training.models import TrainingRun

    runs = TrainingRun.objects.filter(project=project).aggregate(
        queued=Count("id", filter=Q(status="queued")),
        running=Count("id", filter=Q(status="running")),
        succeeded=Count("id", filter=Q(status="succeeded")),
        failed=Count("id", filter=Q(status="failed")),
    )
    comparisons = Comparison.objects.filter(project=project).aggregate(
        pending=Count("id", filter=Q(status=ComparisonStatus.OPEN)),
        done=Count("id", filter=Q(status__in=[ComparisonStatus.COMPLETE, ComparisonStatus.ADJUDICATED])),
        disputed=Count("id", filter=Q(status=ComparisonStatus.DISPUTED)),
    )
    return {
        "prompts": Prompt.objects.filter(prompt_set__project=project).count(),
        "generations": Generation.objects.filter(prompt__prompt_set__project=project).count(),
        "comparisons": comparisons,
        "judgements": Judgement.objects.filter(comparison__project=project).count(),
        "snapshots": PreferenceSnapshot.objects.filter(project=project).count(),
        "runs": runs,
        "model_versions": ModelVersion.objects.filter(project=project).count(),
        "evaluations": Evaluation.objects.filter(project=project).count(),
    }
