from django.contrib import admin

from webapp.generation.models import Generation, GenerationJob


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "prompt_set", "k", "status", "progress_done", "progress_total", "created_at")
    list_filter = ("status", "project")


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    list_display = ("id", "model_version", "prompt", "sample_index", "token_count")
    list_filter = ("model_version",)
    raw_id_fields = ("prompt", "job")
