from django.contrib import admin

from webapp.training.models import Checkpoint, MetricPoint, RunPreset, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "project", "method", "status", "step", "total_steps", "heartbeat_at")
    list_filter = ("status", "method", "project")


@admin.register(MetricPoint)
class MetricPointAdmin(admin.ModelAdmin):
    list_display = ("run", "step", "epoch", "tokens")
    list_filter = ("run",)


@admin.register(Checkpoint)
class CheckpointAdmin(admin.ModelAdmin):
    list_display = ("run", "step", "path", "is_final")


@admin.register(RunPreset)
class RunPresetAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "method")
