"""Generation URLs, under the project prefix."""
from django.urls import path

from webapp.generation import services, views
from webapp.generation.models import GenerationJob
from webapp.job_views import job_action_view

urlpatterns = [
    path("p/<slug:slug>/generation/", views.generation_jobs, name="generation_jobs"),
    path("p/<slug:slug>/generation/<int:job_id>/", views.generation_job_detail, name="generation_job_detail"),
    path("p/<slug:slug>/generation/<int:job_id>/outputs.json", views.generation_job_outputs, name="generation_job_outputs"),
    path("p/<slug:slug>/generation/<int:job_id>/cancel", views.generation_job_cancel, name="generation_job_cancel"),
    path("p/<slug:slug>/generation/<int:job_id>/rerun", job_action_view(
        GenerationJob, lambda job: services.generation_job_rerun(job=job), back="generation_job_detail",
        done="Generation job {job.pk} queued again; answers already stored are kept."), name="generation_job_rerun"),
]
