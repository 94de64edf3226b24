"""ml/standard_benchmarks.py and ml/lm_eval_runner.py: the shipped local task (a YAML over a JSONL of
held-out demo instructions) runs offline through lm-eval's OpenAI-compatible client against a fake
endpoint that answers every instruction correctly (exact match 1, standard error 0); lm-eval's
results become {task: {metric: {value, stderr}}}; task names are checked."""
import json

import pytest

from ml.standard_benchmarks import DEMO_TASK, TASKS_DIR, BenchmarkError, parse_tasks, scores_of
from tests.workers.fake_endpoint import FakeEndpoint

pytest.importorskip("lm_eval")


def test_the_shipped_demo_task_runs_on_an_endpoint_through_lm_evals_client():
    from ml.lm_eval_runner import run_benchmarks

    rows = [json.loads(line) for line in (TASKS_DIR / f"{DEMO_TASK}.jsonl").read_text().splitlines()]
    answers = {row["prompt"]: row["answer"] for row in rows}
    with FakeEndpoint(reply=lambda messages: answers.get(messages[-1]["content"], "?")) as fake:
        scores = run_benchmarks([DEMO_TASK], endpoint={"base_url": fake.base_url, "model": fake.model}, chat_api=True,
                                limit=4)
    assert scores == {DEMO_TASK: {"exact_match": {"value": 1.0, "stderr": 0.0}}}
    assert [r["messages"][-1]["content"] for r in fake.chat_requests] == [row["prompt"] for row in rows[:4]]


def test_scores_and_task_names():
    results = {"results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.1,
                                        "acc_norm,none": 0.75, "acc_norm_stderr,none": "N/A"}}}
    assert scores_of(results, ["arc_easy"]) == {"arc_easy": {"acc": {"value": 0.5, "stderr": 0.1},
                                                             "acc_norm": {"value": 0.75, "stderr": None}}}
    assert parse_tasks(" arc_easy,distillery_demo ,arc_easy") == ["arc_easy", "distillery_demo"]
    with pytest.raises(BenchmarkError, match="not a task name"):
        parse_tasks("arc_easy; rm -rf /")
