"""API: evaluations (launch with the evaluation page's form; results: each model's stats and its win
rates against the teacher per judge, with their confidence intervals; cancel, rerun) and the
project leaderboard. Researchers and admins, as the evaluation pages."""
from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from webapp.api.access import Launched, Page, bound, job_out, page_of, project_for
from webapp.evaluation import selectors, services
from webapp.evaluation.forms import EvaluationForm
from webapp.evaluation.models import Evaluation
from webapp.projects.models import Role

router = Router(tags=["evaluation"])


def _url(project, evaluation) -> str:
    return f"/api/v1/projects/{project.slug}/evaluations/{evaluation.pk}"


def evaluation_out(project, evaluation) -> dict:
    return {**job_out(evaluation, _url(project, evaluation)), "name": evaluation.name, "teacher": evaluation.teacher_id,
            "prompt_set": evaluation.prompt_set_id, "judges": evaluation.judges, "config": evaluation.config,
            "model_versions": list(evaluation.model_versions.values_list("pk", flat=True))}


class EvaluationIn(Schema):
    name: str
    teacher: int
    model_versions: list[int]
    prompt_set: int
    split: str = "eval"
    prompt_limit: int = 50
    judges: list[str] = ["teacher", "oracle"]
    teacher_judge: str = "generative"
    teacher_dpo: int | None = None
    teacher_sft: int | None = None
    max_new_tokens: int = 32
    required_annotations: int = 1
    benchmarks: str = ""  # lm-evaluation-harness task names, comma-separated (the form's field)
    benchmark_limit: int | None = None
    benchmark_api: str | None = None


@router.get("/projects/{slug}/evaluations", response=Page)
def evaluation_list(request, slug: str):
    project = project_for(request, slug, Role.RESEARCHER)
    return page_of(request, selectors.evaluations_for(project=project), lambda e: evaluation_out(project, e))


@router.post("/projects/{slug}/evaluations", response={202: Launched})
def evaluation_launch(request, slug: str, body: EvaluationIn):
    project = project_for(request, slug, Role.RESEARCHER)
    form = bound(EvaluationForm, body.dict(), project=project)
    evaluation = services.evaluation_create(project=project, created_by=request.user, **form.service_kwargs())
    return 202, {"job": evaluation_out(project, evaluation), "url": _url(project, evaluation)}


def _evaluation(project, evaluation_id) -> Evaluation:
    return get_object_or_404(Evaluation.objects.select_related("teacher", "prompt_set"), project=project, pk=evaluation_id)


@router.get("/projects/{slug}/evaluations/{evaluation_id}")
def evaluation_detail(request, slug: str, evaluation_id: int):
    """The job, and once it has run its results: per model version its stats (e.g. oracle accuracy)
    and its win rates against the teacher per judge source, each {rate, low, high, ...} (the interval)."""
    project = project_for(request, slug, Role.RESEARCHER)
    evaluation = _evaluation(project, evaluation_id)
    rows = [{"model_version": row["model_version"].pk, "name": row["model_version"].name, "is_teacher": row["is_teacher"],
             "stats": row["stats"], "versus_teacher": {v["source"]: {k: v[k] for k in v if k not in ("at", "from", "width")}
                                                       for v in row["versus"]},
             "contamination": row["contamination"]} for row in selectors.evaluation_summary(evaluation=evaluation)]
    return {**evaluation_out(project, evaluation), "results": rows, "raw": evaluation.results}


@router.post("/projects/{slug}/evaluations/{evaluation_id}/cancel", response={202: Launched})
def evaluation_cancel(request, slug: str, evaluation_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    evaluation = _evaluation(project, evaluation_id)
    services.evaluation_cancel(evaluation=evaluation)
    evaluation.refresh_from_db()
    return 202, {"job": evaluation_out(project, evaluation), "url": _url(project, evaluation)}


@router.post("/projects/{slug}/evaluations/{evaluation_id}/rerun", response={202: Launched})
def evaluation_rerun(request, slug: str, evaluation_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    evaluation = services.evaluation_rerun(evaluation=_evaluation(project, evaluation_id))
    return 202, {"job": evaluation_out(project, evaluation), "url": _url(project, evaluation)}


@router.get("/projects/{slug}/leaderboard")
def leaderboard(request, slug: str, source: str = "all"):
    project = project_for(request, slug, Role.RESEARCHER)
    board = selectors.leaderboard_for(project=project, source=source if source in selectors.SOURCES else "all")
    return {"leaderboard": _plain(board)}


def _plain(value):
    """Model instances inside a selector's dict as their ids, so the answer is JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "_meta") and hasattr(value, "pk"):
        return {"id": value.pk, "name": str(value)}
    return value
