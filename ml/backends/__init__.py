"""Generation backends: Hugging Face `generate` (ml.generation, the default, runs anywhere) and vLLM
(ml.backends.vllm, optional, CUDA hosts with the `vllm` wheel installed). The backend is a setting
(DISTILLERY_GENERATION_BACKEND: "hf", "vllm", or "auto" = vLLM where it can run, else HF), resolved
here with a loud error for a bad value or an unavailable vLLM; nothing imports vllm until a
generator is built, and the web process never imports this package. Both backends tokenize through
ml.chat and return ml.generation.GenerationOutput lists, so callers do not care which one ran. The
choice reaches ml as an argument (workers pass settings.GENERATION_BACKEND; ml never reads Django
settings). An HF generator may wrap a model the caller already holds for other work (judging,
signals), so no model is loaded twice; vLLM always builds its own engine, freed by close()."""
from __future__ import annotations

import importlib.util
import os

ENV = "DISTILLERY_GENERATION_BACKEND"
CHOICES = ("hf", "vllm", "auto")


class BackendUnavailable(RuntimeError):
    """The configured backend cannot run on this host (said why and what to install)."""


def backend_name(value: str | None = None) -> str:
    """The configured backend: `value`, else $DISTILLERY_GENERATION_BACKEND, else "hf"."""
    name = (value if value is not None else os.environ.get(ENV, "hf")).strip().lower() or "hf"
    if name not in CHOICES:
        raise ValueError(f"{ENV}={name!r} is not a generation backend; choose one of {', '.join(CHOICES)}")
    return name


def vllm_problem() -> str | None:
    """Why vLLM cannot run here, or None when it can (wheel importable and a CUDA device visible)."""
    if importlib.util.find_spec("vllm") is None:
        return "the vllm package is not installed (pip install vllm on a CUDA host)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device is visible (vLLM needs a GPU)"
    return None


def resolve(value: str | None = None) -> str:
    """"hf" or "vllm": the backend that will actually run. "auto" falls back to HF when vLLM cannot
    run; an explicit "vllm" that cannot run raises BackendUnavailable instead of silently using HF."""
    name = backend_name(value)
    if name == "hf":
        return "hf"
    problem = vllm_problem()
    if problem is None:
        return "vllm"
    if name == "auto":
        return "hf"
    raise BackendUnavailable(f"{ENV}=vllm, but {problem}; set it to 'hf' or 'auto' on this host")


class Generator:
    """What both backends share: `with generator_for(...) as g:` closes the generator on the way out."""

    def close(self) -> None:
        """Free what this generator holds (vLLM: its engine and GPU memory)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HFGenerator(Generator):
    """ml.generation.generate over a loaded model (ml.modeling.LoadedModel): one the caller already
    holds, or its own load (HFGenerator.load). close() only drops this generator's reference."""

    name = "hf"

    def __init__(self, loaded):
        self.loaded, self.tokenizer = loaded, loaded.tokenizer

    @classmethod
    def load(cls, source: str, *, revision: str | None = None, device=None) -> "HFGenerator":
        from ml.modeling import load_model

        return cls(load_model(source, revision=revision, device=device))

    def generate(self, prompts, **kwargs):
        from ml.generation import generate

        return generate(self.loaded.model, self.loaded.tokenizer, prompts, **kwargs)

    def close(self) -> None:
        self.loaded = None


def generator_for(source: str, *, revision: str | None = None, backend: str | None = None, loaded=None,
                  **options) -> Generator:
    """A generator for `source` on the resolved backend; `.generate(prompts, k=..., temperature=...,
    top_p=..., max_new_tokens=..., seed=..., top_logprobs=...)` -> list[list[GenerationOutput]].
    `loaded`: the caller's LoadedModel of `source`, reused by HF (vLLM loads its own engine anyway)."""
    if resolve(backend) == "vllm":
        from ml.backends.vllm import VLLMGenerator

        return VLLMGenerator(source, revision=revision, **options)
    if loaded is not None:
        return HFGenerator(loaded)
    return HFGenerator.load(source, revision=revision, device=options.get("device"))
