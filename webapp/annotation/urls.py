"""Annotation URLs, under the project prefix; the JSON API lives under annotate/api/."""
from django.urls import path

from webapp.annotation import api, judging, preference_views, views
from webapp.annotation.models import JudgeJob
from webapp.job_views import job_action_view

urlpatterns = [
    path("p/<slug:slug>/annotate/", views.annotate, name="annotate"),
    path("p/<slug:slug>/annotate/api/next", api.next_item, name="annotation_api_next"),
    path("p/<slug:slug>/annotate/api/submit", api.submit, name="annotation_api_submit"),
    path("p/<slug:slug>/annotate/api/skip", api.skip, name="annotation_api_skip"),
    path("p/<slug:slug>/annotate/api/undo", api.undo, name="annotation_api_undo"),
    path("p/<slug:slug>/comparisons/", views.comparisons_build, name="comparisons_build"),
    path("p/<slug:slug>/comparisons/import/", preference_views.preference_upload, name="preference_upload"),
    path("p/<slug:slug>/judge/", views.judge_jobs, name="judge_jobs"),
    path("p/<slug:slug>/judge/<int:job_id>/rerun", job_action_view(
        JudgeJob, lambda job: judging.judge_job_rerun(job=job), back="judge_jobs", back_kwarg="",
        done="Judge job {job.pk} queued again."), name="judge_job_rerun"),
    path("p/<slug:slug>/quality/", views.quality_page, name="quality"),
    path("p/<slug:slug>/quality/adjudicate/<int:comparison_id>", views.adjudicate, name="adjudicate"),
    path("p/<slug:slug>/snapshots/", views.snapshot_list, name="snapshot_list"),
    path("p/<slug:slug>/snapshots/<int:snapshot_id>/", views.snapshot_detail, name="snapshot_detail"),
    path("p/<slug:slug>/snapshots/<int:snapshot_id>/download/<str:fmt>", views.snapshot_download, name="snapshot_download"),
]
