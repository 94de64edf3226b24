"""A miniature demo build (a few SFT steps): the files land where the product expects them, the
models load back through ml.modeling, the same seed gives byte-identical weights, and held-out
prompts never appear in the SFT data (by content hash)."""
import argparse
import json

from ml.cli import demo as demo_cli
from ml.demo.build import DEMO_FAMILIES, BuildSpec, build_demo, evaluate_accuracy
from ml.demo.tasks import SYSTEMATIC_ERRORS, Task, oracle_score, prompt_content_hash, prompt_split
from ml.modeling import load_model

SPEC = BuildSpec(sft_tasks=140, eval_prompts=14, train_prompts=21, teacher_steps=2, student_steps=2, batch_size=4)


def test_build_writes_loadable_models_prompts_and_figures(tmp_path):
    figures = build_demo(tmp_path / "a", SPEC, progress=False)
    out = tmp_path / "a"
    for role in ("teacher", "student"):
        loaded = load_model(str(out / role), device="cpu")
        assert loaded.num_parameters == figures["models"][role]["parameters"]
        assert loaded.tokenizer.chat_template is not None
    assert figures["models"]["teacher"]["parameters"] > 5 * figures["models"]["student"]["parameters"]
    rows = [json.loads(line) for line in (out / "prompts" / "eval.jsonl").read_text().splitlines()]
    assert set(rows[0]) == {"family", "prompt", "answer"} and len(rows) <= 14
    assert json.loads((out / "build.json").read_text()) == figures
    assert set(figures["teacher_accuracy_per_family"]) <= set(DEMO_FAMILIES)
    assert figures["teacher_errors"]["families"] == {f: SYSTEMATIC_ERRORS[f] for f in ("compare", "count_words")}
    assert figures["models"]["teacher"]["sample_accuracy"]["k"] == SPEC.samples

    build_demo(tmp_path / "b", SPEC, progress=False)
    for role in ("teacher", "student"):
        weights = (out / role / "model.safetensors").read_bytes()
        assert weights == (tmp_path / "b" / role / "model.safetensors").read_bytes()


def test_held_out_prompts_are_disjoint_from_the_sft_data_by_content_hash(tmp_path):
    figures = build_demo(tmp_path, SPEC, progress=False)
    sft_hashes = set((tmp_path / figures["sft_prompt_hashes"]["file"]).read_text().split())
    assert len(sft_hashes) == figures["sft_prompt_hashes"]["count"] > 0
    prompts = {split: [json.loads(line) for line in (tmp_path / "prompts" / f"{split}.jsonl").read_text().splitlines()]
               for split in ("train", "eval")}
    assert figures["eval_prompts_seen_in_sft"] == 0
    assert not {prompt_content_hash(r["prompt"]) for r in prompts["eval"]} & sft_hashes
    assert all(prompt_split(r["prompt"]) == "train" for r in prompts["train"])
    # the prompt files carry the right answers; only the SFT data is corrupted
    assert all(oracle_score(r["prompt"], r["answer"]) for rows in prompts.values() for r in rows)


def test_accuracy_counts_oracle_hits_per_family(tiny_student_dir):
    loaded = load_model(str(tiny_student_dir), device="cpu")
    tasks = [Task("add", "What is 1 plus 1?", "2"), Task("sort", "Sort the words: dog cat", "cat dog")]
    accuracy = evaluate_accuracy(loaded.model, loaded.tokenizer, tasks, max_new_tokens=3)
    # a random-init 4k-parameter model answers nothing right
    assert accuracy == {"overall": 0.0, "per_family": {"add": 0.0, "sort": 0.0}, "n": 2}


def test_cli_registers_build_and_eval_with_spec_flags():
    parser = argparse.ArgumentParser()
    demo_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "build", "--out", "x", "--teacher-steps", "5", "--teacher-lr", "0.01"])
    assert (args.func, args.teacher_steps, args.teacher_lr, args.seed) == (demo_cli.run_build, 5, 0.01, 0)
    args = parser.parse_args(["demo", "eval", "--model", "m", "--prompts", "p.jsonl"])
    assert args.func is demo_cli.run_eval
