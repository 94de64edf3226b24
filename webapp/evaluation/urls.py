"""Evaluation, leaderboard and loop URLs, under the project prefix."""
from django.urls import path

from webapp.evaluation import services, views
from webapp.evaluation.models import Evaluation
from webapp.job_views import job_action_view

urlpatterns = [
    path("p/<slug:slug>/evaluations/", views.evaluation_list, name="evaluation_list"),
    path("p/<slug:slug>/evaluations/<int:evaluation_id>/", views.evaluation_detail, name="evaluation_detail"),
    path("p/<slug:slug>/evaluations/<int:evaluation_id>/side-by-side/", views.evaluation_side_by_side,
         name="evaluation_side_by_side"),
    path("p/<slug:slug>/evaluations/<int:evaluation_id>/send-to-humans", views.evaluation_send_to_humans,
         name="evaluation_send_to_humans"),
    path("p/<slug:slug>/evaluations/<int:evaluation_id>/cancel", views.evaluation_cancel, name="evaluation_cancel"),
    path("p/<slug:slug>/evaluations/<int:evaluation_id>/rerun", job_action_view(
        Evaluation, lambda evaluation: services.evaluation_rerun(evaluation=evaluation), url_kwarg="evaluation_id",
        back="evaluation_detail", done="{job} queued again; answers already stored are kept."), name="evaluation_rerun"),
    path("p/<slug:slug>/leaderboard/", views.leaderboard, name="evaluation_leaderboard"),
    path("p/<slug:slug>/loop/", views.loop_rounds, name="evaluation_loop"),
    path("p/<slug:slug>/loop/<int:round_id>/cancel", views.loop_round_cancel, name="loop_round_cancel"),
    path("p/<slug:slug>/loop/<int:round_id>/rerun", views.loop_round_rerun, name="loop_round_rerun"),
]
