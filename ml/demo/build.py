"""Building the demo world on the CPU: tokenizer, an SFT-trained teacher and a smaller, briefly
trained student (so distillation has room to show), their held-out oracle accuracy, and the prompt
files the product loop starts from. Everything is seeded, so a build repeats.

The SFT data is drawn from the "train" half of the prompt space only and the held-out prompts from
the "eval" half (`tasks.prompt_split`), so they are disjoint by content; the SFT prompts' content
hashes go to prompts/sft_hashes.txt for evaluations to check overlap. The SFT data carries a known
flaw: `teacher_error_rate` of the answers of `corrupted_families` follow a systematic wrong rule
(`tasks.SYSTEMATIC_ERRORS`). The teacher learns it (so it is wrong there, greedily, while some of
its samples are right) and sequence-level KD on its outputs copies it; a judgement that picks the
right sample is information the teacher's own answers lack. See docs/demo.md."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ml.demo.configs import build_model, llama_config, save_model_dir
from ml.demo.tasks import (SYSTEMATIC_ERRORS, Task, corrupt_tasks, generate_split_tasks, oracle_score,
                           prompt_content_hash)
from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer
from ml.demo.training import train_sft
from ml.generation import generate


# The families whose prompt spaces are large and whose answers follow from the prompt by a rule a
# tiny model can learn. add, subtract and count_letters are left out: with one token per number and
# per word, their answers are memorised facts (100, 55 and 16 prompts in all), so a held-out prompt
# of theirs that no SFT example shows is a fact no model was taught (a first build scored the
# teacher 53% on unseen sums).
DEMO_FAMILIES = ("compare", "reverse", "sort", "count_words")


@dataclass(frozen=True)
class BuildSpec:
    """Sizes and budgets of a demo build; the defaults fit ~4 minutes on two CPU cores."""

    seed: int = 0
    sft_tasks: int = 20_000
    eval_prompts: int = 700
    train_prompts: int = 2_000
    teacher_steps: int = 2000
    teacher_lr: float = 3e-3
    student_steps: int = 600
    student_lr: float = 3e-3
    batch_size: int = 64
    teacher_error_rate: float = 0.7  # share of corrupted_families' SFT answers that follow the wrong rule
    corrupted_families: str = "compare,count_words"  # comma-separated keys of tasks.SYSTEMATIC_ERRORS
    samples: int = 4  # answers sampled per held-out prompt (temperature 1) for the sample-accuracy figures

    def corrupted(self) -> tuple[str, ...]:
        families = tuple(f for f in self.corrupted_families.split(",") if f)
        unknown = set(families) - set(SYSTEMATIC_ERRORS)
        if unknown:
            raise ValueError(f"no systematic error for {sorted(unknown)}; known: {sorted(SYSTEMATIC_ERRORS)}")
        return families


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


def sample_accuracy(model, tokenizer, tasks: list[Task], *, k: int, seed: int, batch_size: int = 128,
                    max_new_tokens: int = 8) -> dict:
    """Share of k temperature-1 samples the oracle accepts, overall and per family, and the share of
    prompts with at least one right sample: what a judgement can pick from."""
    outputs = generate(model, tokenizer, [t.prompt for t in tasks], k=k, temperature=1.0, top_p=1.0,
                       max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    hits, any_hit = defaultdict(list), defaultdict(list)
    for task, samples in zip(tasks, outputs):
        scores = [oracle_score(task, s.text) for s in samples]
        hits[task.family] += scores
        any_hit[task.family].append(any(scores))
    return {"per_family": {f: sum(h) / len(h) for f, h in sorted(hits.items())},
            "overall": sum(map(sum, hits.values())) / max(1, sum(map(len, hits.values()))),
            "any_right_per_family": {f: sum(h) / len(h) for f, h in sorted(any_hit.items())}, "k": k}


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
    clean_sft = generate_split_tasks(spec.sft_tasks, seed=spec.seed, split="train", families=DEMO_FAMILIES)
    sft_tasks = corrupt_tasks(clean_sft, rate=spec.teacher_error_rate, families=spec.corrupted(), seed=spec.seed)
    eval_tasks = _distinct(generate_split_tasks(spec.eval_prompts, seed=spec.seed + 1, split="eval",
                                                families=DEMO_FAMILIES))
    train_tasks = _distinct(generate_split_tasks(spec.train_prompts, seed=spec.seed + 2, split="train",
                                                 families=DEMO_FAMILIES))
    tokenizer = train_demo_tokenizer(corpus_from_tasks(clean_sft))
    tokenizer.save_pretrained(out / "tokenizer")
    # Prompt files carry the oracle's (right) answers; only the SFT data is corrupted.
    write_jsonl(out / "prompts" / "train.jsonl", (t.to_dict() for t in train_tasks))
    write_jsonl(out / "prompts" / "eval.jsonl", (t.to_dict() for t in eval_tasks))
    sft_hashes = sorted({prompt_content_hash(t.prompt) for t in sft_tasks})
    (out / "prompts" / "sft_hashes.txt").write_text("".join(h + "\n" for h in sft_hashes))

    figures = {"spec": asdict(spec), "vocab_size": len(tokenizer), "models": {},
               "families": list(DEMO_FAMILIES),
               "teacher_errors": {"families": {f: SYSTEMATIC_ERRORS[f] for f in spec.corrupted()},
                                  "rate": spec.teacher_error_rate,
                                  "sft_answers_wrong": sum(a.answer != b.answer for a, b in zip(clean_sft, sft_tasks))}}
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
        samples = sample_accuracy(model, tokenizer, eval_tasks, k=spec.samples, seed=spec.seed)
        save_model_dir(model, tokenizer, out / role)
        figures["models"][role] = {
            "parameters": model.num_parameters(),
            "steps": steps,
            "final_loss": sum(losses[-10:]) / len(losses[-10:]),
            "train_seconds": round(train_seconds, 1),
            "eval_accuracy": accuracy,
            "sample_accuracy": samples,
        }
    bar.close()
    teacher_acc = figures["models"]["teacher"]["eval_accuracy"]["overall"]
    student_acc = figures["models"]["student"]["eval_accuracy"]["overall"]
    figures["accuracy_gap_points"] = round(100 * (teacher_acc - student_acc), 1)
    figures["teacher_accuracy_per_family"] = figures["models"]["teacher"]["eval_accuracy"]["per_family"]
    figures["student_accuracy"] = student_acc
    hashes = set(sft_hashes)
    figures["eval_prompts_seen_in_sft"] = sum(prompt_content_hash(t.prompt) in hashes for t in eval_tasks)
    figures["sft_prompt_hashes"] = {
        "file": "prompts/sft_hashes.txt", "count": len(sft_hashes),
        "hash": "sha256 of json.dumps({'text': prompt.strip(), 'messages': None}, sort_keys=True, "
                "ensure_ascii=False): webapp Prompt.content_hash of a text prompt (ml.demo.tasks.prompt_content_hash)"}
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["torch_threads"] = torch.get_num_threads()
    (out / "build.json").write_text(json.dumps(figures, indent=2))
    return figures
