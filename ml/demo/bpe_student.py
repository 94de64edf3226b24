"""The demo world's second student, of another family (issue 20): a byte-level BPE tokenizer
(ml/demo/bpe_tokenizer.py, its own vocabulary size, merges and chat template) trained on the same
SFT corpus as the demo tokenizer, and a student of the demo student's size and budget on it. Built
beside an existing demo world into DIR/student-bpe (`python -m ml demo bpe-student --demo-dir DIR`),
as an artefact of its own: the demo world's files, and the cache key the tests use for them, stay
as they are. Its token ids mean nothing to the demo teacher, so only text-level methods and the
cross-tokenizer mode (ULD) connect them."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from ml.demo.bpe_tokenizer import train_bpe_tokenizer
from ml.demo.build import DEMO_FAMILIES, BuildSpec, _distinct, evaluate_accuracy
from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import corrupt_tasks, generate_split_tasks
from ml.demo.tokenizer import corpus_from_tasks
from ml.demo.training import train_sft

DIR_NAME = "student-bpe"


def build_bpe_student(demo_dir: str | Path, *, progress: bool = False) -> dict:
    """Build DIR/student-bpe from the spec in DIR/build.json (same SFT data, steps and learning rate
    as the demo student); returns its figures (also written to student-bpe/bpe-build.json). A
    finished one is kept: the build goes to a temporary folder renamed into place."""
    demo_dir = Path(demo_dir)
    out = demo_dir / DIR_NAME
    if (out / "bpe-build.json").exists():
        return json.loads((out / "bpe-build.json").read_text())
    started = time.perf_counter()
    build = json.loads((demo_dir / "build.json").read_text())
    if "spec" not in build:
        raise ValueError(f"{demo_dir / 'build.json'} holds no build spec: the BPE student is built from a world "
                         "made by `python -m ml demo build`")
    spec = BuildSpec(**build["spec"])
    clean_sft = generate_split_tasks(spec.sft_tasks, seed=spec.seed, split="train", families=DEMO_FAMILIES)
    sft_tasks = corrupt_tasks(clean_sft, rate=spec.teacher_error_rate, families=spec.corrupted(), seed=spec.seed)
    eval_tasks = _distinct(generate_split_tasks(spec.eval_prompts, seed=spec.seed + 1, split="eval",
                                                families=DEMO_FAMILIES))
    tokenizer = train_bpe_tokenizer(corpus_from_tasks(clean_sft))
    model = build_model(llama_config(tokenizer, "student"), seed=spec.seed)
    on_step = (lambda step, loss: print(f"\rstudent-bpe step {step}/{spec.student_steps} loss {loss:.3f}", end="")) \
        if progress else None
    losses = train_sft(model, tokenizer, sft_tasks, steps=spec.student_steps, batch_size=spec.batch_size,
                       lr=spec.student_lr, seed=spec.seed, on_step=on_step)
    figures = {"tokenizer": "byte-level BPE", "vocab_size": len(tokenizer), "parameters": model.num_parameters(),
               "steps": spec.student_steps, "final_loss": sum(losses[-10:]) / len(losses[-10:]),
               "eval_accuracy": evaluate_accuracy(model, tokenizer, eval_tasks)}
    partial = out.with_name(f"{DIR_NAME}.building-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    save_model_dir(model, tokenizer, partial)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    (partial / "bpe-build.json").write_text(json.dumps(figures, indent=2))
    if not (out / "bpe-build.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        os.replace(partial, out)
    shutil.rmtree(partial, ignore_errors=True)
    return figures
