from django.contrib import admin

from webapp.annotation.models import Comparison, ComparisonItem, Judgement, PreferencePair, PreferenceSnapshot


class ComparisonItemInline(admin.TabularInline):
    model = ComparisonItem
    raw_id_fields = ("generation",)
    extra = 0


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ("id", "project", "kind", "source", "status", "required_annotations", "priority")
    list_filter = ("project", "kind", "source", "status")
    raw_id_fields = ("prompt",)
    inlines = [ComparisonItemInline]


@admin.register(Judgement)
class JudgementAdmin(admin.ModelAdmin):
    list_display = ("id", "comparison", "source", "annotator", "judge_name", "verdict", "probability", "created_at")
    list_filter = ("source", "verdict")
    raw_id_fields = ("comparison",)


@admin.register(PreferenceSnapshot)
class PreferenceSnapshotAdmin(admin.ModelAdmin):
    list_display = ("name", "project", "rule", "source_filter", "pair_count", "content_hash", "created_at")


@admin.register(PreferencePair)
class PreferencePairAdmin(admin.ModelAdmin):
    list_display = ("id", "snapshot", "prompt", "chosen", "rejected", "weight")
    raw_id_fields = ("prompt", "chosen", "rejected")
