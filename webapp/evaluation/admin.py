"""Evaluations of student versions against the teacher, and the rounds of the closed loop."""
from django.contrib import admin

from webapp.evaluation.models import Evaluation, Leaderboard, LoopRound


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "project", "status", "created_at")
    list_filter = ("status", "project")


@admin.register(LoopRound)
class LoopRoundAdmin(admin.ModelAdmin):
    list_display = ("project", "number", "student", "status", "created_at")


@admin.register(Leaderboard)
class LeaderboardAdmin(admin.ModelAdmin):
    list_display = ("project", "computed_at")
