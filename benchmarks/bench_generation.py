"""Batched generation (ml.generation.generate, batch 32, left padding) against a loop that calls
`model.generate` one prompt at a time, on the demo student: generated tokens per second for both and
their ratio (goal: >= 5x). Uses a built demo student (`--model DIR/student`) or, without one, a
random-init student of the same architecture (same cost per token).

    python -m benchmarks.bench_generation [--model var/demo/student] [--prompts 256] [--threads 1]
"""
import argparse
import time

import torch

from ml.demo.configs import build_model, llama_config
from ml.demo.tasks import generate_tasks
from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer
from ml.generation import generate
from ml.modeling import load_model, render_prompt


def demo_student(model_dir):
    if model_dir:
        loaded = load_model(model_dir, device="cpu")
        return loaded.model, loaded.tokenizer
    tokenizer = train_demo_tokenizer(corpus_from_tasks(generate_tasks(2000, seed=0)))
    return build_model(llama_config(tokenizer, "student"), seed=0).eval(), tokenizer


def one_at_a_time(model, tokenizer, prompts, max_new_tokens):
    """The naive loop: one `model.generate` call per prompt. Returns the generated token count."""
    tokens = 0
    for prompt in prompts:
        batch = tokenizer(render_prompt(tokenizer, prompt), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[0, batch["input_ids"].shape[1]:].tolist()
        tokens += new.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in new else len(new)
    return tokens


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="demo student directory (default: random-init)")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = demo_student(args.model)
    prompts = [task.prompt for task in generate_tasks(args.prompts, seed=123)]
    generate(model, tokenizer, prompts[:8], temperature=0, max_new_tokens=2)  # warm-up

    rows = []
    started = time.perf_counter()
    outputs = generate(model, tokenizer, prompts, temperature=0, max_new_tokens=args.max_new_tokens,
                       batch_size=args.batch_size)
    seconds = time.perf_counter() - started
    rows.append((f"batched (batch {args.batch_size})", sum(len(o[0].token_ids) for o in outputs), seconds))
    started = time.perf_counter()
    tokens = one_at_a_time(model, tokenizer, prompts, args.max_new_tokens)
    rows.append(("one prompt at a time", tokens, time.perf_counter() - started))

    print(f"demo student: {model.num_parameters():,} parameters, {len(prompts)} prompts, "
          f"greedy, max_new_tokens={args.max_new_tokens}, {torch.get_num_threads()} CPU threads")
    print(f"{'mode':<24}{'tokens':>8}{'seconds':>10}{'tokens/s':>11}")
    for mode, count, secs in rows:
        print(f"{mode:<24}{count:>8}{secs:>10.2f}{count / secs:>11.0f}")
    ratio = (rows[0][1] / rows[0][2]) / (rows[1][1] / rows[1][2])
    print(f"speed-up: {ratio:.1f}x (goal >= 5x)")


if __name__ == "__main__":
    main()
