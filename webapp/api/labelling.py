"""API: generation jobs, comparisons (build, list), teacher-judge jobs, judgements (list, export as
JSONL) and preference snapshots (freeze, list, download in every export format). The forms and
services of the generation and annotation pages; researchers and admins only, as those pages."""
import json

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from webapp.annotation import (downloads, exports, judging, selectors as annotation_selectors, services as annotation_services,
                               snapshot_jobs)
from webapp.annotation.forms import ComparisonBuildForm, JudgeJobForm, SnapshotForm
from webapp.annotation.models import Comparison, JudgeJob, Judgement, PreferenceSnapshot, SnapshotFreeze
from webapp.annotation.views import _judge_scope
from webapp.api.access import Launched, Page, bound, error, job_out, page_of, project_for
from webapp.generation import selectors as generation_selectors, services as generation_services
from webapp.generation.forms import GenerationJobForm
from webapp.generation.models import Generation, GenerationJob
from webapp.projects.models import Role

router = Router()
FORMATS = ("trl", "jsonl", *exports.ZIPPED)  # trl = jsonl: TRL's preference rows


# -- generation jobs ------------------------------------------------------------------------------

def _gen_url(project, job) -> str:
    return f"/api/v1/projects/{project.slug}/generation-jobs/{job.pk}"


def generation_job_out(project, job) -> dict:
    return {**job_out(job, _gen_url(project, job)), "prompt_set": job.prompt_set_id, "split": job.split, "k": job.k,
            "temperature": job.temperature, "max_new_tokens": job.max_new_tokens,
            "model_versions": list(job.model_versions.values_list("pk", flat=True))}


class GenerationJobIn(Schema):
    model_versions: list[int]
    prompt_set: int
    split: str = ""
    prompt_limit: int | None = None
    k: int = 2
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0


@router.get("/projects/{slug}/generation-jobs", tags=["generation"], response=Page)
def generation_job_list(request, slug: str):
    project = project_for(request, slug, Role.RESEARCHER)
    return page_of(request, generation_selectors.jobs_for(project=project), lambda job: generation_job_out(project, job))


@router.post("/projects/{slug}/generation-jobs", tags=["generation"], response={202: Launched})
def generation_job_create(request, slug: str, body: GenerationJobIn):
    project = project_for(request, slug, Role.RESEARCHER)
    form = bound(GenerationJobForm, body.dict(), project=project)
    job = generation_services.generation_job_create(project=project, created_by=request.user, **form.cleaned_data)
    return 202, {"job": generation_job_out(project, job), "url": _gen_url(project, job)}


def _generation_job(project, job_id) -> GenerationJob:
    return get_object_or_404(GenerationJob, project=project, pk=job_id)


@router.get("/projects/{slug}/generation-jobs/{job_id}", tags=["generation"])
def generation_job_detail(request, slug: str, job_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    return generation_job_out(project, _generation_job(project, job_id))


@router.get("/projects/{slug}/generation-jobs/{job_id}/generations", tags=["generation"], response=Page)
def generation_list(request, slug: str, job_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    job = _generation_job(project, job_id)
    return page_of(request, Generation.objects.filter(job=job).order_by("id"),
                   lambda g: {"id": g.pk, "prompt": g.prompt_id, "model_version": g.model_version_id, "text": g.text})


@router.post("/projects/{slug}/generation-jobs/{job_id}/cancel", tags=["generation"], response={202: Launched})
def generation_job_cancel(request, slug: str, job_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    job = _generation_job(project, job_id)
    generation_services.generation_job_cancel(job=job)
    job.refresh_from_db()
    return 202, {"job": generation_job_out(project, job), "url": _gen_url(project, job)}


@router.post("/projects/{slug}/generation-jobs/{job_id}/rerun", tags=["generation"], response={202: Launched})
def generation_job_rerun(request, slug: str, job_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    job = generation_services.generation_job_rerun(job=_generation_job(project, job_id))
    return 202, {"job": generation_job_out(project, job), "url": _gen_url(project, job)}


# -- comparisons ----------------------------------------------------------------------------------

def comparison_out(c) -> dict:
    return {"id": c.pk, "prompt": c.prompt_id, "kind": c.kind, "source": c.source, "status": c.status,
            "priority": c.priority, "required_annotations": c.required_annotations, "evaluation": c.evaluation_id,
            "generations": [item.generation_id for item in c.items.all()]}


@router.get("/projects/{slug}/comparisons", tags=["annotation"], response=Page)
def comparison_list(request, slug: str, status: str = "", source: str = ""):
    project = project_for(request, slug, Role.RESEARCHER)
    rows = Comparison.objects.filter(project=project).prefetch_related("items").order_by("id")
    rows = rows.filter(status=status) if status else rows
    return page_of(request, rows.filter(source=source) if source else rows, comparison_out)


class ComparisonBuildIn(Schema):
    job: int
    mode: str = "teacher_student"
    required_annotations: int = 1
    kway_size: int = 4
    priority: float = 0.0
    limit: int | None = None


@router.post("/projects/{slug}/comparisons", tags=["annotation"], response={201: dict})
def comparison_build(request, slug: str, body: ComparisonBuildIn):
    """Build comparisons from a finished generation job's outputs (the build page)."""
    project = project_for(request, slug, Role.RESEARCHER)
    data = bound(ComparisonBuildForm, body.dict(), project=project).cleaned_data
    made = annotation_services.comparisons_build(
        project=project, generations=Generation.objects.filter(job=data["job"]), mode=data["mode"],
        required_annotations=data["required_annotations"], kway_size=data["kway_size"], priority=data["priority"],
        limit=data["limit"])
    return 201, {"created": len(made), "ids": [c.pk for c in made],
                 "overview": list(annotation_selectors.comparisons_overview(project=project))}


# -- judge jobs -----------------------------------------------------------------------------------

def _judge_url(project, job) -> str:
    return f"/api/v1/projects/{project.slug}/judge-jobs/{job.pk}"


def judge_job_out(project, job) -> dict:
    return {**job_out(job, _judge_url(project, job)), "method": job.method, "teacher": job.teacher_id,
            "reference": job.reference_id, "beta": job.beta, "judge_name": job.judge_name, "unparseable": job.unparseable}


class JudgeJobIn(Schema):
    teacher: int
    method: str = "likelihood"
    reference: int | None = None
    beta: float = 0.01
    scope: str = "unjudged"
    source: str = ""
    limit: int | None = None


@router.get("/projects/{slug}/judge-jobs", tags=["annotation"], response=Page)
def judge_job_list(request, slug: str):
    project = project_for(request, slug, Role.RESEARCHER)
    return page_of(request, JudgeJob.objects.filter(project=project).order_by("-id"), lambda j: judge_job_out(project, j))


@router.post("/projects/{slug}/judge-jobs", tags=["annotation"], response={202: Launched})
def judge_job_create(request, slug: str, body: JudgeJobIn):
    """Have a teacher judge comparisons (the judge page's form: method, scope, source, limit)."""
    project = project_for(request, slug, Role.RESEARCHER)
    data = bound(JudgeJobForm, body.dict(), project=project).cleaned_data
    job = judging.judge_job_create(project=project, created_by=request.user, teacher=data["teacher"], method=data["method"],
                                   reference=data["reference"], beta=data["beta"], comparisons=_judge_scope(project, data))
    return 202, {"job": judge_job_out(project, job), "url": _judge_url(project, job)}


@router.get("/projects/{slug}/judge-jobs/{job_id}", tags=["annotation"])
def judge_job_detail(request, slug: str, job_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    return judge_job_out(project, get_object_or_404(JudgeJob, project=project, pk=job_id))


@router.post("/projects/{slug}/judge-jobs/{job_id}/cancel", tags=["annotation"], response={202: Launched})
def judge_job_cancel(request, slug: str, job_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    job = get_object_or_404(JudgeJob, project=project, pk=job_id)
    judging.judge_job_cancel(job=job)
    job.refresh_from_db()
    return 202, {"job": judge_job_out(project, job), "url": _judge_url(project, job)}


@router.post("/projects/{slug}/judge-jobs/{job_id}/rerun", tags=["annotation"], response={202: Launched})
def judge_job_rerun(request, slug: str, job_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    job = judging.judge_job_rerun(job=get_object_or_404(JudgeJob, project=project, pk=job_id))
    return 202, {"job": judge_job_out(project, job), "url": _judge_url(project, job)}


# -- judgements -----------------------------------------------------------------------------------

def judgement_out(j) -> dict:
    return {"id": j.pk, "comparison": j.comparison_id, "source": j.source,
            "annotator": j.annotator.username if j.annotator_id else None, "judge_name": j.judge_name,
            "verdict": j.verdict, "ranking": j.ranking, "probability": j.probability, "rationale": j.rationale,
            "flags": j.flags, "is_adjudication": j.is_adjudication, "created_at": j.created_at.isoformat()}


def _judgements(project, source: str):
    rows = Judgement.objects.filter(comparison__project=project).select_related("annotator").order_by("id")
    return rows.filter(source=source) if source else rows


@router.get("/projects/{slug}/judgements", tags=["annotation"], response=Page)
def judgement_list(request, slug: str, source: str = ""):
    """Every judgement (human, teacher, imported), with who made it; ?source= filters."""
    project = project_for(request, slug, Role.RESEARCHER)
    return page_of(request, _judgements(project, source), judgement_out)


@router.get("/projects/{slug}/judgements/export", tags=["annotation"])
def judgement_export(request, slug: str, source: str = ""):
    """All judgements as JSONL, one per line, streamed."""
    project = project_for(request, slug, Role.RESEARCHER)
    rows = _judgements(project, source).iterator(chunk_size=1000)
    response = StreamingHttpResponse((json.dumps(judgement_out(j), ensure_ascii=False) + "\n" for j in rows),
                                     content_type="application/jsonl")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-judgements.jsonl"'
    return response


# -- snapshots ------------------------------------------------------------------------------------

def snapshot_out(project, s) -> dict:
    url = f"/api/v1/projects/{project.slug}/snapshots/{s.pk}"
    return {"id": s.pk, "name": s.name, "rule": s.rule, "tie_policy": s.tie_policy, "source_filter": s.source_filter,
            "content_hash": s.content_hash, "pair_count": s.pair_count, "sources": s.sources, "created_at": s.created_at,
            "url": url, "downloads": {fmt: f"{url}/download/{fmt}" for fmt in FORMATS}}


class SnapshotIn(Schema):
    name: str
    rule: str = "majority"
    tie_policy: str = "drop"
    source_filter: str = "both"


@router.get("/projects/{slug}/snapshots", tags=["snapshots"], response=Page)
def snapshot_list(request, slug: str):
    project = project_for(request, slug, Role.RESEARCHER)
    return page_of(request, annotation_selectors.snapshots_for(project=project), lambda s: snapshot_out(project, s))


@router.post("/projects/{slug}/snapshots", tags=["snapshots"], response={201: dict, 202: Launched})
def snapshot_freeze(request, slug: str, body: SnapshotIn):
    """Aggregate the settled comparisons into a frozen, hashed preference snapshot. A large project
    freezes on a worker, as from the page (snapshot_jobs): 202 with the freeze job to poll."""
    project = project_for(request, slug, Role.RESEARCHER)
    data = bound(SnapshotForm, body.dict()).cleaned_data
    made = snapshot_jobs.snapshot_freeze_start(project=project, created_by=request.user, **data)
    if isinstance(made, SnapshotFreeze):
        return 202, {"job": _freeze_out(project, made), "url": _freeze_url(project, made)}
    return 201, snapshot_out(project, made)


def _freeze_url(project, job) -> str:
    return f"/api/v1/projects/{project.slug}/snapshot-freezes/{job.pk}"


def _freeze_out(project, job) -> dict:
    snapshot = None if job.snapshot_id is None else f"/api/v1/projects/{project.slug}/snapshots/{job.snapshot_id}"
    return {**job_out(job, _freeze_url(project, job)), "name": job.name, "snapshot": snapshot}


@router.get("/projects/{slug}/snapshot-freezes/{job_id}", tags=["snapshots"])
def snapshot_freeze_detail(request, slug: str, job_id: int):
    """A background freeze: its status and progress (pairs so far), and the snapshot's URL once frozen."""
    project = project_for(request, slug, Role.RESEARCHER)
    return _freeze_out(project, get_object_or_404(SnapshotFreeze, project=project, pk=job_id))


@router.get("/projects/{slug}/snapshots/{snapshot_id}", tags=["snapshots"])
def snapshot_detail(request, slug: str, snapshot_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    return snapshot_out(project, get_object_or_404(PreferenceSnapshot, project=project, pk=snapshot_id))


@router.get("/projects/{slug}/snapshots/{snapshot_id}/download/{fmt}", tags=["snapshots"])
def snapshot_download(request, slug: str, snapshot_id: int, fmt: str):
    """trl / jsonl: TRL preference rows (JSONL); hf, llamafactory, axolotl: a zip of that export folder."""
    project = project_for(request, slug, Role.RESEARCHER)
    snapshot = get_object_or_404(PreferenceSnapshot, project=project, pk=snapshot_id)
    if fmt not in FORMATS:
        raise error(404, f"Unknown export format {fmt[:40]!r}; one of {', '.join(FORMATS)}.", loc=("path", "fmt"))
    return downloads.snapshot_download_response(project, snapshot, fmt)
