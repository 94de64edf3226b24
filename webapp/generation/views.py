"""Generation pages: start a job (queued on the gpu queue), watch its live progress bar, browse its
outputs per prompt, cancel it."""
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.utils import timezone
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from webapp.generation import selectors, services
from webapp.generation.forms import GenerationJobForm
from webapp.generation.models import GenerationJob
from webapp.job_views import form_create
from webapp.projects.models import Role
from webapp.projects.permissions import project_view

JOBS_PER_PAGE = 25


@project_view(Role.RESEARCHER)
def generation_jobs(request, project):
    form = GenerationJobForm(request.POST or None, project=project)
    if created := form_create(
        request, form, lambda data: services.generation_job_create(project=project, created_by=request.user, **data),
        done=lambda job: f"Generation job {job.pk} queued: {job.progress_total} prompt × model answers, k={job.k}.",
        then=lambda job: redirect("generation_job_detail", slug=project.slug, job_id=job.pk)):
        return created
    page = Paginator(selectors.jobs_for(project=project), JOBS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "generation/jobs.html", {"project": project, "role": request.role, "form": form,
                                                     "jobs": page, "page": page})


@project_view(Role.RESEARCHER)
def generation_job_detail(request, project, job_id):
    job = get_object_or_404(GenerationJob.objects.select_related("prompt_set"), project=project, pk=job_id)
    page = Paginator(selectors.job_prompt_ids(job=job), 20).get_page(request.GET.get("page"))
    results = selectors.job_results(job=job, prompt_ids=list(page))
    return render(request, "generation/job_detail.html", {"project": project, "role": request.role, "job": job,
                                                           "page": page, "results": results, "progress": _progress(job),
                                                           "usage": selectors.job_usage(job=job)})


def _progress(job) -> dict:
    eta = max(0, round((job.eta_at - timezone.now()).total_seconds())) if job.eta_at and job.status == "running" else None
    return {"status": job.status, "done": job.progress_done, "total": job.progress_total, "eta_seconds": eta,
            "eta_at": job.eta_at.isoformat() if eta is not None else None}


@project_view(Role.RESEARCHER)
def generation_job_outputs(request, project, job_id):
    """Outputs stored since ?after=<generation id>, with progress and ETA: the job page polls this
    while the job runs, so answers show as they arrive."""
    job = get_object_or_404(GenerationJob, project=project, pk=job_id)
    try:
        after = min(max(0, int(request.GET.get("after", 0))), 2 ** 63 - 1)
    except ValueError:
        return JsonResponse({"error": "after must be a generation id"}, status=400)
    return JsonResponse({**_progress(job), "outputs": selectors.job_outputs_after(job=job, after=after)})


@require_POST
@project_view(Role.RESEARCHER)
def generation_job_cancel(request, project, job_id):
    job = get_object_or_404(GenerationJob, project=project, pk=job_id)
    services.generation_job_cancel(job=job)
    messages.info(request, f"Cancel requested for job {job.pk}; it stops after the current batch.")
    return redirect("generation_job_detail", slug=project.slug, job_id=job.pk)
