"""ml/standard_benchmarks.py and ml/lm_eval_runner.py: the shipped local task (a YAML over a JSONL of
held-out demo instructions) runs offline through lm-eval's OpenAI-compatible client against the REAL
vLLM server serving the demo teacher (tests/conftest.py `vllm_server`), and its exact-match score is
the one our own greedy answers from the same server give under the task's rule (whitespace and case
ignored); lm-eval's results become {task: {metric: {value, stderr}}}; task names are checked."""
import json
import math

import pytest

from ml.standard_benchmarks import DEMO_TASK, TASKS_DIR, BenchmarkError, parse_tasks, scores_of

pytest.importorskip("lm_eval")

LIMIT = 8


@pytest.mark.vllm
@pytest.mark.slow
def test_the_shipped_demo_task_runs_on_an_endpoint_through_lm_evals_client(vllm_server):
    from ml.endpoints.generation import EndpointGenerator
    from ml.endpoints.spec import EndpointSpec
    from ml.lm_eval_runner import run_benchmarks

    rows = [json.loads(line) for line in (TASKS_DIR / f"{DEMO_TASK}.jsonl").read_text().splitlines()][:LIMIT]
    scores = run_benchmarks([DEMO_TASK], endpoint={"base_url": vllm_server.base_url, "model": vllm_server.model},
                            api_key=vllm_server.api_key, chat_api=True, limit=LIMIT)
    spec = EndpointSpec(vllm_server.base_url, vllm_server.model, vllm_server.env_name)
    with EndpointGenerator(spec, env={vllm_server.env_name: vllm_server.api_key}) as generator:
        outputs = generator.generate([row["prompt"] for row in rows], temperature=0.0, max_new_tokens=32)
    hits = [out[0].text.split("\n")[0].strip().lower() == row["answer"].strip().lower()
            for out, row in zip(outputs, rows, strict=True)]
    expected = sum(hits) / LIMIT
    got = scores[DEMO_TASK]["exact_match"]
    assert got["value"] == pytest.approx(expected)
    assert 0 < expected < 1, "the demo teacher is right on some held-out prompts and wrong on others"
    sample_sd = math.sqrt(sum((h - expected) ** 2 for h in hits) / (LIMIT - 1))
    assert got["stderr"] == pytest.approx(sample_sd / math.sqrt(LIMIT), rel=1e-6)


def test_scores_and_task_names():
    results = {"results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.1,
                                        "acc_norm,none": 0.75, "acc_norm_stderr,none": "N/A"}}}
    assert scores_of(results, ["arc_easy"]) == {"arc_easy": {"acc": {"value": 0.5, "stderr": 0.1},
                                                             "acc_norm": {"value": 0.75, "stderr": None}}}
    assert parse_tasks(" arc_easy,distillery_demo ,arc_easy") == ["arc_easy", "distillery_demo"]
    with pytest.raises(BenchmarkError, match="not a task name"):
        parse_tasks("arc_easy; rm -rf /")
