"""The GPU check (issue 11.7), run by scripts/gpu-check.sh on a lent CUDA host, on the real demo pair
(var/demo-real, `make demo-real`): bf16 training steps of the student and teacher with tokens/s and
MFU (6 x parameters x tokens/s over the device's peak bf16 FLOP/s), HF and vLLM generation
throughput through ml.backends, and, with two or more GPUs, a 2-process DPO run through
`accelerate launch -m ml train`. Prints one JSON object per measurement (and a summary table) so the
figures can go into docs/benchmarks.md as they are. `--dry-run` runs every step at toy sizes on the
CPU with a random-init model, to prove the script itself works where no GPU is lent.

    python -m benchmarks.gpu_check [--demo-dir var/demo-real] [--peak-tflops 989] [--dry-run]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0}


def emit(record: dict) -> dict:
    print(json.dumps(record), flush=True)
    return record


def device_peak_tflops(override: float | None) -> float | None:
    if override:
        return override
    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def tiny_model_dir(root: Path) -> Path:
    """A random-init Llama with the demo tokenizer: the dry run's stand-in for the real pair."""
    from ml.demo.configs import build_model, llama_config, save_model_dir
    from ml.demo.tasks import generate_tasks
    from ml.demo.tokenizer import corpus_from_tasks, train_demo_tokenizer

    tokenizer = train_demo_tokenizer(corpus_from_tasks(generate_tasks(200, seed=0)))
    path = root / "tiny"
    save_model_dir(build_model(llama_config(tokenizer, "tiny-teacher"), seed=0), tokenizer, path)
    return path


def train_steps(model_dir: Path, *, device, batch: int, length: int, steps: int, peak_tflops) -> dict:
    """AdamW steps on random token batches in bf16 autocast (fp32 master weights): tokens/s, MFU."""
    from ml.modeling import load_model

    loaded = load_model(str(model_dir), device=device, dtype=torch.float32, trainable=True)
    model, params = loaded.model, loaded.num_parameters
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    vocab = model.config.vocab_size
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def step():
        ids = torch.randint(0, vocab, (batch, length), device=device)
        with autocast:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    tokens_per_s = batch * length * steps / seconds
    mfu = 6 * params * tokens_per_s / (peak_tflops * 1e12) if peak_tflops else None
    record = {"check": "train_bf16", "model": str(model_dir), "parameters": params, "batch": batch, "length": length,
              "steps": steps, "seconds": round(seconds, 3), "tokens_per_s": round(tokens_per_s),
              "mfu": round(mfu, 4) if mfu is not None else None,
              "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.type == "cuda" else None}
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return emit(record)


def generation_throughput(model_dir: Path, backend: str, *, prompts: list, max_new_tokens: int, k: int) -> dict:
    from ml.backends import BackendUnavailable, generator_for

    try:
        started = time.perf_counter()
        generator = generator_for(str(model_dir), backend=backend)
        loaded_s = time.perf_counter() - started
    except BackendUnavailable as exc:
        return emit({"check": f"generate_{backend}", "skipped": str(exc)})
    generator.generate(prompts[:4], k=1, temperature=0, max_new_tokens=4)  # warm-up
    started = time.perf_counter()
    outputs = generator.generate(prompts, k=k, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens, seed=0)
    seconds = time.perf_counter() - started
    tokens = sum(len(o.token_ids) for samples in outputs for o in samples)
    generator.close()  # vLLM shuts its engine down and gives the GPU memory back before the next check
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return emit({"check": f"generate_{backend}", "model": str(model_dir), "prompts": len(prompts), "k": k,
                 "max_new_tokens": max_new_tokens, "tokens": tokens, "seconds": round(seconds, 3),
                 "tokens_per_s": round(tokens / seconds), "load_seconds": round(loaded_s, 1)})


def two_process_run(student: Path, work: Path, *, steps: int, dry_run: bool) -> dict:
    """DPO through the product's CLI under `accelerate launch --num_processes 2` (gloo on the CPU in
    the dry run, NCCL across two GPUs otherwise)."""
    gpus = torch.cuda.device_count()
    if not dry_run and gpus < 2:
        return emit({"check": "two_process_dpo", "skipped": f"{gpus} GPU(s) visible, 2 needed"})
    pairs = work / "pairs.jsonl"
    rows = [{"prompt": f"What is {i} plus {i + 1}?", "chosen": str(2 * i + 1), "rejected": str(2 * i)} for i in range(64)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no" if dry_run else "bf16", *(["--cpu"] if dry_run else []),
               "-m", "ml", "train", "--method", "dpo", "--data", str(pairs), "--student", str(student),
               "--out", str(work / "dpo-2proc"), "--set", f"max_steps={steps}", "--set", "batch_size=4",
               "--set", "grad_accum=1", "--set", "max_length=128", "--set", "learning_rate=1e-6"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    return emit({"check": "two_process_dpo", "returncode": result.returncode, "seconds": round(time.perf_counter() - started, 1),
                 "steps": steps, "tail": (result.stdout + result.stderr)[-1500:] if result.returncode else
                 result.stdout[-400:]})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=Path("var/demo-real"))
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak bf16 TFLOP/s (default: by name)")
    parser.add_argument("--dry-run", action="store_true", help="toy sizes on the CPU: checks the script, measures nothing")
    parser.add_argument("--skip", action="append", default=[], choices=["train", "hf", "vllm", "two_process"])
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    if not args.dry_run and device.type != "cuda":
        print("no CUDA device visible: use --dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    if args.dry_run:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        teacher = student = tiny_model_dir(work)
        sizes = dict(batch=2, length=32, steps=2, prompts=4, new=4, k=2, two_steps=2)
    else:
        teacher, student = args.demo_dir / "teacher", args.demo_dir / "student"
        if not (teacher / "config.json").exists():
            print(f"{teacher} missing: build the real demo first (make demo-real)", file=sys.stderr)
            return 2
        sizes = dict(batch=16, length=1024, steps=20, prompts=256, new=128, k=4, two_steps=20)
    peak = device_peak_tflops(args.peak_tflops)
    emit({"check": "host", "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
          "gpus": torch.cuda.device_count(), "torch": torch.__version__, "peak_bf16_tflops": peak, "dry_run": args.dry_run})
    from ml.demo.real import TRAIN_PROMPTS

    prompts = [TRAIN_PROMPTS[i % len(TRAIN_PROMPTS)] for i in range(sizes["prompts"])]
    results = []
    if "train" not in args.skip:
        for model_dir in dict.fromkeys([student, teacher]):
            results.append(train_steps(model_dir, device=device, batch=sizes["batch"], length=sizes["length"],
                                       steps=sizes["steps"], peak_tflops=peak))
    for backend in ("hf", "vllm"):
        if backend not in args.skip:
            results.append(generation_throughput(teacher, backend, prompts=prompts, max_new_tokens=sizes["new"], k=sizes["k"]))
    if "two_process" not in args.skip:
        results.append(two_process_run(student, work, steps=sizes["two_steps"], dry_run=args.dry_run))
    failed = [r for r in results if r.get("returncode")]
    print("summary:", json.dumps([{k: r.get(k) for k in ("check", "tokens_per_s", "mfu", "skipped", "returncode")}
                                  for r in results]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
