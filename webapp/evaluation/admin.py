from django.contrib import admin

from webapp.evaluation.models import Evaluation, LoopRound


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "project", "status", "created_at")
    list_filter = ("status", "project")


@admin.register(LoopRound)
class LoopRoundAdmin(admin.ModelAdmin):
    list_display = ("project", "number", "student", "created_at")
