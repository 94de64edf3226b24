"""Batched generation (ml.generation.generate, batch 32, left padding) against a loop that calls
`model.generate` one prompt at a time, on the demo student: generated tokens per second for both and
their ratio (goal: >= 5x). Uses a built demo student (`--model DIR/student`) or, without one, a
random-init student of the same architecture (same cost per token).

    python -m benchmarks.bench_generation [--model var/demo/student] [--prompts 256] [--threads 1]

Memory mode (issue 11.3): peak resident memory while generating on a random-init Llama with a
152k-token vocabulary (a word-level tokenizer of that size, so every sampled id decodes), for the
old way (`output_logits=True`, every step's full-vocabulary logits stacked, then log-softmaxed) and
for ml.generation (one step's log-probs at a time). Each mode runs in its own process, after a
warm-up on a tiny model (so lazy imports are not counted); the peak is the kernel's high-water mark
(VmHWM, reset when generation starts) or, where unreadable, RSS sampled every 2 ms. The goal is
peak <= model + KV cache + 10%.

    python -m benchmarks.bench_generation --memory [--vocab 152064] [--prompts 8] [--k 4] [--max-new-tokens 64]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
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


def big_vocab_pair(vocab: int, hidden: int, layers: int):
    """A random-init Llama and a word-level tokenizer, both with `vocab` tokens and a ChatML template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    words = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(vocab - len(specials))])}
    core = Tokenizer(models.WordLevel(words, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", eos_token="<|im_end|>",
                                        pad_token="<pad>", additional_special_tokens=specials[1:3])
    tokenizer.chat_template = ("{% for m in messages %}<|im_start|> {{ m['content'] }} <|im_end|> {% endfor %}"
                               "{% if add_generation_prompt %}<|im_start|> {% endif %}")
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=words["<|im_end|>"], pad_token_id=words["<pad>"])
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tokenizer


def generate_all_logits(model, tokenizer, prompts, *, k, max_new_tokens):
    """The generation this project did before issue 11: every step's full-vocabulary logits kept
    (output_logits), stacked to (N,T,V) and log-softmaxed, to read one value per token."""
    from ml.chat import prompt_ids
    from ml.generation import sampled_token_logps

    rows = [prompt_ids(tokenizer, p) for p in prompts]
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
    attention_mask = (torch.arange(width)[None, :] >= torch.tensor([width - len(r) for r in rows])[:, None]).long()
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, do_sample=True, temperature=1.0,
                             top_k=0, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens,
                             num_return_sequences=k, pad_token_id=tokenizer.pad_token_id,
                             return_dict_in_generate=True, output_logits=True)
    generated = out.sequences[:, width:]
    step_logits = torch.stack(out.logits, dim=1)  # (N,T,V)
    return sampled_token_logps(step_logits, generated, temperature=1.0), generated


def _high_water_mark() -> int | None:
    """The kernel's peak RSS of this process since the last reset (VmHWM), in bytes; None if unreadable."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return None


class PeakRSS(threading.Thread):
    """Peak resident set size while running, in bytes: the kernel's exact high-water mark (VmHWM,
    reset at start through /proc/self/clear_refs) where Linux allows it, and in any case the max of
    RSS samples taken every 2 ms (which can miss a spike shorter than that)."""

    def __init__(self):
        import psutil

        super().__init__(daemon=True)
        self.process, self.peak, self.running = psutil.Process(), 0, True
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # resets VmHWM to the current RSS
            self.exact = _high_water_mark() is not None
        except OSError:
            self.exact = False

    def run(self):
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def stop(self) -> int:
        self.running = False
        self.join()
        self.sampled = max(self.peak, self.process.memory_info().rss)
        return max(self.sampled, _high_water_mark() or 0) if self.exact else self.sampled


def memory_child(mode: str, args) -> dict:
    """One measurement in this (fresh) process: RSS before the model, after it, and peak while generating."""
    import psutil

    from ml.generation import generate

    rss = lambda: psutil.Process().memory_info().rss  # noqa: E731
    warm_model, warm_tokenizer = big_vocab_pair(1000, 32, 1)  # lazy imports, thread pools, allocator: not counted
    warm_prompts = ["w1 w2", "w3"]
    generate(warm_model, warm_tokenizer, warm_prompts, k=2, temperature=1.0, max_new_tokens=2)
    generate_all_logits(warm_model, warm_tokenizer, warm_prompts, k=2, max_new_tokens=2)
    del warm_model, warm_tokenizer
    before_model = rss()
    model, tokenizer = big_vocab_pair(args.vocab, args.hidden, args.layers)
    after_model = rss()
    prompts = [" ".join(f"w{(i * 7 + j) % 1000}" for j in range(args.prompt_tokens)) for i in range(args.prompts)]
    sampler = PeakRSS()
    sampler.start()
    started = time.perf_counter()
    if mode == "all-logits":
        logps, generated = generate_all_logits(model, tokenizer, prompts, k=args.k, max_new_tokens=args.max_new_tokens)
        tokens = generated.numel()
    else:
        outputs = generate(model, tokenizer, prompts, k=args.k, temperature=1.0, max_new_tokens=args.max_new_tokens,
                           batch_size=args.prompts)
        tokens = sum(len(o.token_ids) for samples in outputs for o in samples)
    seconds = time.perf_counter() - started
    peak = sampler.stop()
    cfg = model.config
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    rows, length = args.prompts * args.k, args.prompt_tokens + 2 + args.max_new_tokens
    kv_bytes = 2 * cfg.num_hidden_layers * rows * length * cfg.num_key_value_heads * head_dim * 4
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"mode": mode, "before_model": before_model, "after_model": after_model, "peak": peak,
            "peak_sampled": sampler.sampled, "peak_exact": sampler.exact,
            "model_bytes": model_bytes, "kv_bytes": kv_bytes, "tokens": tokens, "seconds": seconds}


def memory_main(args) -> None:
    results = []
    for mode in ("all-logits", "lean"):
        command = [sys.executable, "-m", "benchmarks.bench_generation", "--memory-child", mode,
                   *[f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                     if k in ("vocab", "hidden", "layers", "prompts", "k", "max_new_tokens", "prompt_tokens", "threads")]]
        out = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    mib = lambda b: b / 2**20  # noqa: E731
    first = results[0]
    print(f"random-init Llama, vocab {args.vocab:,}, hidden {args.hidden}, {args.layers} layers: "
          f"model {mib(first['model_bytes']):.0f} MiB; {args.prompts} prompts x {args.k} samples x "
          f"{args.max_new_tokens} new tokens; KV cache {mib(first['kv_bytes']):.1f} MiB; {args.threads} thread(s)")
    print(f"{'mode':<12}{'peak RSS':>10}{'over start':>12}{'generation':>12}{'budget':>9}{'verdict':>9}{'tok/s':>8}")
    for r in results:
        over_start = r["peak"] - r["before_model"]  # model + everything generation added
        budget = 1.1 * (r["model_bytes"] + r["kv_bytes"])
        print(f"{r['mode']:<12}{mib(r['peak']):>9.0f}M{mib(over_start):>11.0f}M{mib(r['peak'] - r['after_model']):>11.0f}M"
              f"{mib(budget):>8.0f}M{'ok' if over_start <= budget else 'over':>9}{r['tokens'] / r['seconds']:>8.0f}")


def main():
    if "--memory-child" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--memory-child", required=True)
        for name, default in (("vocab", 152064), ("hidden", 1024), ("layers", 8), ("prompts", 8), ("k", 4),
                              ("max-new-tokens", 64), ("prompt-tokens", 32), ("threads", 1)):
            parser.add_argument(f"--{name}", type=int, default=default)
        args = parser.parse_args()
        torch.set_num_threads(args.threads)
        print(json.dumps(memory_child(args.memory_child, args)))
        return
    if "--memory" in sys.argv:
        parser = argparse.ArgumentParser(description="generation peak memory, all-logits vs lean")
        parser.add_argument("--memory", action="store_true")
        for name, default in (("vocab", 152064), ("hidden", 1024), ("layers", 8), ("prompts", 8), ("k", 4),
                              ("max-new-tokens", 64), ("prompt-tokens", 32), ("threads", 1)):
            parser.add_argument(f"--{name}", type=int, default=default)
        memory_main(parser.parse_args())
        return
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
