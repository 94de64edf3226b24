"""Annotation pages: the annotation page itself (its data comes from api.py), building comparisons,
teacher-judge jobs, the quality page with the disputes queue and adjudication, and preference
snapshots (freeze, inspect, download as TRL JSONL or an HF datasets directory)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from webapp import json_bounds
from webapp.annotation import downloads, events, exports, judging, quality, selectors, services, snapshot_jobs
from webapp.annotation.forms import ComparisonBuildForm, JudgeJobForm, SnapshotForm
from webapp.annotation.models import Comparison, JudgeJob, PreferenceSnapshot, SnapshotFreeze
from webapp.generation.models import Generation
from webapp.job_views import form_create
from webapp.projects.models import Role
from webapp.projects.permissions import project_view


@project_view(Role.ANNOTATOR)
def annotate(request, project):
    return render(request, "annotation/annotate.html", {"project": project, "role": request.role, "flags": services.FLAGS})


@project_view(Role.RESEARCHER)
def comparisons_build(request, project):
    form = ComparisonBuildForm(request.POST or None, project=project, initial={"job": request.GET.get("job")})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            made = services.comparisons_build(project=project, generations=Generation.objects.filter(job=data["job"]), mode=data["mode"],
                                              required_annotations=data["required_annotations"], kway_size=data["kway_size"],
                                              priority=data["priority"], limit=data["limit"])
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Built {len(made)} comparisons, each for {data['required_annotations']} annotator(s).")
            return redirect("comparisons_build", slug=project.slug)
    return render(request, "annotation/build.html", {"project": project, "role": request.role, "form": form,
                                                      "overview": selectors.comparisons_overview(project=project)})


@project_view(Role.RESEARCHER)
def judge_jobs(request, project):
    form = JudgeJobForm(request.POST or None, project=project)
    if created := form_create(
        request, form, lambda data: judging.judge_job_create(
            project=project, created_by=request.user, teacher=data["teacher"], method=data["method"],
            reference=data["reference"], beta=data["beta"], comparisons=_judge_scope(project, data), **_rubric(data)),
        done=lambda job: f"Judge job {job.pk} queued: {job.progress_total} comparisons.",
        then=lambda job: redirect("judge_jobs", slug=project.slug)):
        return created
    page = Paginator(JudgeJob.objects.filter(project=project).select_related("teacher"), 25).get_page(request.GET.get("page"))
    return render(request, "annotation/judge.html", {"project": project, "role": request.role, "form": form,
                                                      "jobs": page, "page": page})


def _rubric(data) -> dict:
    """The generative judge's template, labels and threshold from the form (other methods: defaults)."""
    if data["method"] != "generative":
        return {"template": "", "labels": ("A", "B")}
    return {"template": judging.rubric_template(data["template"]), "labels": (data["first_label"].strip(), data["second_label"].strip()),
            "answer_mass_threshold": data["answer_mass_threshold"]}


def _judge_scope(project, data):
    comparisons = Comparison.objects.filter(project=project)
    if data["scope"] == "disputed":
        comparisons = comparisons.filter(status="disputed")
    if data["scope"] == "unjudged":
        name = judging.judge_name_for(method=data["method"], teacher=data["teacher"], reference=data["reference"],
                                      beta=data["beta"], template=_rubric(data)["template"], labels=_rubric(data)["labels"])
        comparisons = comparisons.exclude(judgements__judge_name=name)
    if data["source"]:
        comparisons = comparisons.filter(source=data["source"])
    ids = list(comparisons.order_by("-priority", "id").values_list("id", flat=True)[: data["limit"] or None])
    return Comparison.objects.filter(pk__in=ids)


@project_view(Role.RESEARCHER)
def quality_page(request, project):
    return _quality(request, project)


def _quality(request, project, status: int = 200):
    stored = quality.quality_stored(project=project)  # computed by a default-queue task, shown with its age
    return render(request, "annotation/quality.html", {"project": project, "role": request.role, "quality": stored,
                                                        "report": stored["report"],
                                                        "disputed": selectors.disputed_comparisons(project=project),
                                                        "disputed_count": events.counters(project.pk)["disputed"]},
                  status=status)


@require_POST
@project_view(Role.RESEARCHER)
def adjudicate(request, project, comparison_id):
    comparison = get_object_or_404(Comparison, project=project, pk=comparison_id)
    try:
        both_bad = request.POST.get("both_bad") == "1"
        ranking = [list(comparison.items.values_list("generation_id", flat=True))] if both_bad else \
            json_bounds.loads(request.POST.get("ranking", "[]"), max_depth=2)  # [[id, ...], ...]
        services.comparison_adjudicate(comparison=comparison, researcher=request.user, ranking=ranking, both_bad=both_bad,
                                       rationale=request.POST.get("rationale", ""))
    except (ValidationError, ValueError) as exc:  # ValueError: not JSON, or nested too deep (was a RecursionError 500)
        messages.error(request, f"Comparison {comparison.pk}: {getattr(exc, 'messages', [str(exc)])[0]}")
        return _quality(request, project, status=400)  # the page again, the reason on it
    messages.success(request, f"Comparison {comparison.pk} adjudicated.")
    return redirect("quality", slug=project.slug)


@project_view(Role.RESEARCHER)
def snapshot_list(request, project):
    form = SnapshotForm(request.POST or None)
    if created := form_create(  # a large project's freeze is a background job (snapshot_jobs.py): the page answers at once
        request, form, lambda data: snapshot_jobs.snapshot_freeze_start(project=project, created_by=request.user, **data),
        done=lambda made: (f"Froze {made.name}: {made.pair_count} pairs, hash {made.content_hash[:12]}."
                           if isinstance(made, PreferenceSnapshot) else f"Freezing {made.name} in the background; its progress shows below."),
        then=lambda made: redirect("snapshot_detail", slug=project.slug, snapshot_id=made.pk)
        if isinstance(made, PreferenceSnapshot) else redirect("snapshot_list", slug=project.slug)):
        return created
    return render(request, "annotation/snapshots.html", {"project": project, "role": request.role, "form": form,
                                                          "snapshots": selectors.snapshots_for(project=project),
                                                          "freezes": SnapshotFreeze.objects.filter(project=project)[:5]})


@project_view(Role.RESEARCHER)
def snapshot_detail(request, project, snapshot_id):
    snapshot = get_object_or_404(PreferenceSnapshot, project=project, pk=snapshot_id)
    page = selectors.pairs_page(snapshot=snapshot, after=request.GET.get("after"), before=request.GET.get("before"),
                                last=request.GET.get("page") == "last")
    return render(request, "annotation/snapshot_detail.html", {"project": project, "role": request.role, "snapshot": snapshot,
                                                                "page": page})


@project_view(Role.RESEARCHER)
def snapshot_download(request, project, snapshot_id, fmt):
    snapshot = get_object_or_404(PreferenceSnapshot, project=project, pk=snapshot_id)
    if fmt != "jsonl" and fmt not in exports.ZIPPED:
        raise Http404("Unknown export format.")
    return downloads.snapshot_download_response(project, snapshot, fmt)
