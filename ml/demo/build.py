"""Building the demo world on the CPU: tokenizer, an SFT-trained teacher and a smaller, briefly
trained student (so distillation has room to show), their held-out oracle accuracy, and the prompt
files the product loop starts from. Everything is seeded, so a build repeats."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import Task, generate_tasks, oracle_score
from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer
from ml.demo.training import train_sft
from ml.generation import generate


@dataclass(frozen=True)
class BuildSpec:
    """Sizes and budgets of a demo build; the defaults fit ~5 minutes on two CPU cores."""

    seed: int = 0
    sft_tasks: int = 20_000
    eval_prompts: int = 700
    train_prompts: int = 2_000
    teacher_steps: int = 1500
    teacher_lr: float = 3e-3
    student_steps: int = 600
    student_lr: float = 3e-3
    batch_size: int = 64


def evaluate_accuracy(model, tokenizer, tasks: list[Task], *, batch_size: int = 128, max_new_tokens: int = 8) -> dict:
    """Greedy oracle accuracy: {"overall": float, "per_family": {family: float}, "n": int}."""
    outputs = generate(
        model, tokenizer, [t.prompt for t in tasks], temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size
    )
    correct = defaultdict(list)
    for task, samples in zip(tasks, outputs):
        correct[task.family].append(oracle_score(task, samples[0].text))
    per_family = {family: sum(hits) / len(hits) for family, hits in sorted(correct.items())}
    overall = sum(sum(hits) for hits in correct.values()) / max(1, len(tasks))
    return {"overall": overall, "per_family": per_family, "n": len(tasks)}


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def _distinct(tasks: list[Task]) -> list[Task]:
    return list({task.prompt: task for task in tasks}.values())


def build_demo(out: str | Path, spec: BuildSpec = BuildSpec(), *, progress: bool = True) -> dict:
    """Build tokenizer, teacher and student into `out` (out/tokenizer, out/teacher, out/student,
    out/prompts/{train,eval}.jsonl, out/build.json) and return the figures written to build.json."""
    out = Path(out)
    started = time.perf_counter()
    sft_tasks = generate_tasks(spec.sft_tasks, seed=spec.seed)
    eval_tasks = _distinct(generate_tasks(spec.eval_prompts, seed=spec.seed + 1))
    train_tasks = _distinct(generate_tasks(spec.train_prompts, seed=spec.seed + 2))
    tokenizer = train_demo_tokenizer(corpus_from_tasks(sft_tasks))
    tokenizer.save_pretrained(out / "tokenizer")
    write_jsonl(out / "prompts" / "train.jsonl", (t.to_dict() for t in train_tasks))
    write_jsonl(out / "prompts" / "eval.jsonl", (t.to_dict() for t in eval_tasks))

    figures = {"spec": asdict(spec), "vocab_size": len(tokenizer), "models": {}}
    bar = tqdm(total=spec.teacher_steps + spec.student_steps, desc="demo build", disable=not progress)
    for role, steps, lr in (("teacher", spec.teacher_steps, spec.teacher_lr), ("student", spec.student_steps, spec.student_lr)):
        bar.set_description(f"training {role}")
        model = build_model(llama_config(tokenizer, role), seed=spec.seed)
        role_started = time.perf_counter()

        def on_step(step, loss):
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss:.3f}")

        losses = train_sft(
            model, tokenizer, sft_tasks, steps=steps, batch_size=spec.batch_size, lr=lr, seed=spec.seed, on_step=on_step
        )
        train_seconds = time.perf_counter() - role_started
        accuracy = evaluate_accuracy(model, tokenizer, eval_tasks)
        save_model_dir(model, tokenizer, out / role)
        figures["models"][role] = {
            "parameters": model.num_parameters(),
            "steps": steps,
            "final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "train_seconds": round(train_seconds, 1),
            "eval_accuracy": accuracy,
        }
    bar.close()
    teacher_acc = figures["models"]["teacher"]["eval_accuracy"]["overall"]
    student_acc = figures["models"]["student"]["eval_accuracy"]["overall"]
    figures["accuracy_gap_points"] = round(100 * (teacher_acc - student_acc), 1)
    sft_prompts = {task.prompt for task in sft_tasks}
    # Small families (add, subtract: 100 prompts each) cannot keep train and eval disjoint.
    figures["eval_prompts_seen_in_sft"] = sum(task.prompt in sft_prompts for task in eval_tasks)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["torch_threads"] = torch.get_num_threads()
    (out / "build.json").write_text(json.dumps(figures, indent=2))
    return figures
