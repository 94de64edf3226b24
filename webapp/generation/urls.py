"""Generation URLs, under the project prefix."""
from django.urls import path

from webapp.generation import views

urlpatterns = [
    path("p/<slug:slug>/generation/", views.generation_jobs, name="generation_jobs"),
    path("p/<slug:slug>/generation/<int:job_id>/", views.generation_job_detail, name="generation_job_detail"),
    path("p/<slug:slug>/generation/<int:job_id>/cancel", views.generation_job_cancel, name="generation_job_cancel"),
]
