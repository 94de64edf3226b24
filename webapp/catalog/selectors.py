"""Reads for the catalog pages: model versions with lineage, prompt sets with their counts, and a
searchable page of one set's prompts, and whether a version's weights can be loaded here."""
import os
from pathlib import Path

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


def weights_available(model_version: ModelVersion) -> bool:
    """Whether a worker here can load it: a local directory with config.json and weights, or a hub
    id already in the local hub cache (nothing is downloaded at run time). Imported datasets'
    stand-in versions (source `import:…`) have no weights at all."""
    source = model_version.source
    if source.startswith("import:"):
        return False
    path = Path(source)
    if path.is_absolute():
        return (path / "config.json").is_file() and any(path.glob("*.safetensors"))
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    return (hub / ("models--" + source.replace("/", "--"))).is_dir()
