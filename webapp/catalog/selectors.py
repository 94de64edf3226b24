"""Reads for the catalog pages: model versions with lineage, prompt sets with their counts, and a
searchable page of one set's prompts, whether a version's weights can be loaded here, and for an
endpoint version which uses and training methods its probed capability allows, and why."""
import os
from pathlib import Path

from django.db.models import Count, Q

from ml.endpoints.spec import methods_for
from webapp.catalog.models import ModelVersion, Prompt, PromptSet

USE_LABELS = {"generation": "Generation", "judge:generative": "Judge: generative", "judge:likelihood": "Judge: likelihood",
              "judge:implicit_reward": "Judge: implicit reward", "sft": "SFT / sequence-level KD", "kd": "Token-level KD",
              "dckd": "DCKD", "adpa": "ADPA", "adpa_plus": "ADPA+", "dpo": "DPO", "taid": "TAID", "redi": "REDI"}


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
    stand-in versions (source `import:…`) and endpoint versions have no weights here at all."""
    source = model_version.source
    if source.startswith("import:") or model_version.is_endpoint:
        return False
    path = Path(source)
    if path.is_absolute():
        return (path / "config.json").is_file() and any(path.glob("*.safetensors"))
    hub = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")
    return (hub / ("models--" + source.replace("/", "--"))).is_dir()

# Uses the capability would allow but the workers do not run on an endpoint yet: refused with this
# reason until they do (drop an entry when its worker path lands).
NOT_YET_ON_ENDPOINTS = {
    "judge:likelihood": "the judge workers ask endpoints generatively only; use the generative judge",
    "judge:implicit_reward": "the judge workers ask endpoints generatively only; use the generative judge",
    "adpa": "ADPA's token advantages are not computed from endpoints yet; use DCKD",
    "adpa_plus": "ADPA+'s token advantages are not computed from endpoints yet; use DCKD",
}


def endpoint_uses(model_version: ModelVersion) -> list[tuple[str, bool, str]]:
    """(use or method, allowed, why) for an endpoint version, from ml.endpoints.spec.methods_for on its
    probed capability, less NOT_YET_ON_ENDPOINTS; while the probe is pending or after it failed,
    nothing is allowed and the reason says so. [] for a version with weights."""
    state = model_version.probe_state
    if not state:
        return []
    if state == "failed":
        why = f"the last probe failed ({model_version.probe_error[:160]}); probe it again"
        return [(name, False, why) for name, _, _ in methods_for(None)]
    rows = methods_for(model_version.capability if state == "ok" else None)
    return [(name, False, NOT_YET_ON_ENDPOINTS[name]) if ok and name in NOT_YET_ON_ENDPOINTS else (name, ok, why)
            for name, ok, why in rows]


def endpoint_refusal(model_version, use: str) -> str | None:
    """Why `model_version` cannot serve `use` (a methods_for name), or None when it can (always for
    weights). The sentence names the version, its kind and the reason, for a form error."""
    if model_version is None or not model_version.is_endpoint:
        return None
    for name, allowed, why in endpoint_uses(model_version):
        if name == use:
            return None if allowed else (f"{model_version.name} is an endpoint ({endpoint_summary(model_version)}): "
                                         f"{USE_LABELS.get(use, use)} is not possible: {why}.")
    return None


def endpoint_summary(model_version: ModelVersion) -> str:
    """"white-box", "black-box", "probe pending" or "probe failed"; "" for weights."""
    state = model_version.probe_state
    if state == "ok":
        return model_version.endpoint_kind or "capability unknown"
    return {"pending": "probe pending", "failed": "probe failed"}.get(state, "")


def version_label(model_version: ModelVersion) -> str:
    """How model pickers name a version: endpoint versions are marked as such, with their kind."""
    label = f"{model_version.name} · {model_version.stage_label}"
    return label + (f" · endpoint, {endpoint_summary(model_version)}" if model_version.is_endpoint else "")


def endpoint_notes(versions) -> list[dict]:
    """For a picker's choices: each endpoint version with its summary and its uses table, for the
    catalog/_endpoint_uses.html include beside a form that picks a teacher."""
    return [{"version": mv, "summary": endpoint_summary(mv),
             "uses": [(USE_LABELS.get(n, n), ok, why) for n, ok, why in endpoint_uses(mv)]}
            for mv in versions if mv.is_endpoint]
