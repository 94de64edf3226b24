"""Training pages under /p/<slug>/training/."""
from django.urls import path

from webapp.training import views

urlpatterns = [
    path("p/<slug:slug>/training/", views.runs_list, name="training_runs"),
    path("p/<slug:slug>/training/new/", views.run_new, name="training_new"),
    path("p/<slug:slug>/training/compare/", views.runs_compare, name="training_compare"),
    path("p/<slug:slug>/training/runs/<int:run_id>/", views.run_detail, name="training_run"),
    path("p/<slug:slug>/training/runs/<int:run_id>/cancel", views.run_cancel, name="training_run_cancel"),
    path("p/<slug:slug>/training/runs/<int:run_id>/resume", views.run_resume, name="training_run_resume"),
    path("p/<slug:slug>/training/runs/<int:run_id>/points.json", views.run_points, name="training_run_points"),
    path("p/<slug:slug>/training/runs/<int:run_id>/monitor.json", views.run_monitor, name="training_run_monitor"),
    path("p/<slug:slug>/training/runs/<int:run_id>/checkpoints/<int:step>/register", views.checkpoint_register,
         name="training_checkpoint_register"),
]
