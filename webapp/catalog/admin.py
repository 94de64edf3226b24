from django.contrib import admin

from webapp.catalog.models import ModelVersion, Prompt, PromptSet


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "role", "stage", "source", "parameter_count", "parent", "produced_by")
    list_filter = ("project", "role", "stage")


@admin.register(PromptSet)
class PromptSetAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "created_at")


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("id", "prompt_set", "split", "__str__")
    list_filter = ("split", "prompt_set")
    search_fields = ("text",)
