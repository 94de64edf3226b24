"""Reads for the catalog pages: model versions with lineage, prompt sets with their counts, and a
searchable page of one set's prompts."""
from django.db.models import Count, Q

from webapp.catalog.models import ModelVersion, Prompt, PromptSet


def model_versions_for(*, project):
    return ModelVersion.objects.filter(project=project).select_related("parent", "produced_by", "snapshot")


def prompt_sets_for(*, project):
    return PromptSet.objects.filter(project=project).annotate(
        total=Count("prompts"),
        train=Count("prompts", filter=Q(prompts__split="train")),
        eval=Count("prompts", filter=Q(prompts__split="eval")),
    )


def prompts_in(*, prompt_set, query: str = "", split: str = "", tag: str = ""):
    prompts = Prompt.objects.filter(prompt_set=prompt_set)
    if query:
        prompts = prompts.filter(Q(text__icontains=query) | Q(messages__icontains=query))
    if split:
        prompts = prompts.filter(split=split)
    if tag:
        prompts = prompts.filter(tags__contains=[tag])
    return prompts.order_by("id")


def existing_hashes(*, project, prompt_set_name: str) -> set[str]:
    return set(Prompt.objects.filter(prompt_set__project=project, prompt_set__name=prompt_set_name)
               .values_list("content_hash", flat=True))
