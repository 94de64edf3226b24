"""The closed loop end to end, as a user runs it, on a small demo world built here (the demo build
with smaller budgets: an SFT teacher with the demo's systematic flaw, a briefly trained student):
two rounds of benchmarks.bench_loop.LoopDriver against a real ASGI server and real gpu and default
Celery workers. Simulated annotators (10% noise, two per comparison) judge through the HTTP API,
which hands out each round's comparisons largest teacher-student disagreement first; a teacher-judge
job runs on the gpu worker; a snapshot, an SFT-on-chosen run on the worker, and one evaluation on
held-out prompts at the end. The round-2 student beats the round-1 student, which beats the base,
on oracle accuracy; no held-out prompt, oracle verdict or oracle answer reaches any training data."""
import pytest
import torch

from benchmarks.bench_loop import LoopDriver, LoopSettings, demo_world, people
from ml.demo.build import BuildSpec, build_demo
from webapp.annotation.models import Comparison, PreferencePair
from webapp.evaluation.models import LoopRound
from webapp.generation.models import Generation

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The demo build with smaller training budgets (about 2 minutes on two quiet cores). Prompt counts cost
# the build nothing: 999 distinct training prompts (two rounds of 480) and 262 held-out ones.
SMALL = BuildSpec(seed=0, sft_tasks=4000, eval_prompts=300, train_prompts=1200, teacher_steps=500, student_steps=150,
                  samples=1)


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("small-demo")
    figures = build_demo(out, SMALL, progress=False)
    return out, figures


def test_two_rounds_of_the_loop_make_a_better_student_each_round(small_demo, asgi_server, celery_workers):
    demo_dir, figures = small_demo
    world = demo_world(demo_dir, eval_prompts=300)
    settings = LoopSettings(rounds=2, prompts_per_round=480, eval_prompts=300, annotators=2, overlap=2, noise=0.1,
                            baseline=False, timeout_s=900,
                            train={"learning_rate": 1e-3, "batch_size": 8, "grad_accum": 1, "num_epochs": 4,
                                   "max_length": 64, "warmup_ratio": 0.1})
    driver = LoopDriver(base_url=asgi_server, project=world["project"], researcher=world["researcher"],
                        annotators=people(world["project"], settings.annotators), teacher=world["teacher"],
                        base_student=world["base"], prompt_set=world["prompt_set"], eval_set=world["prompt_set"],
                        settings=settings)
    result = driver.run()
    scores = result["evaluation"]["scores"]
    base, r1, r2 = (scores[name]["oracle"]["acc"] for name in ("demo-student", "loop-r1", "loop-r2"))
    assert r2 > r1 > base, (base, r1, r2, figures["models"])

    for row in result["rows"]:
        # People judged through the API, and each of them was handed the round's items by disagreement.
        assert row["api_errors"] == 0 and row["human_judgements"] >= settings.overlap * row["comparisons"] * 0.9
        for seen in row["queue_orders"]:
            by_id = dict(Comparison.objects.filter(pk__in=seen).values_list("pk", "priority"))
            order = [by_id[i] for i in seen]
            # Largest disagreement first. Not strictly: two people asking at the same instant race for
            # the same slots and one of them is handed the next item (seen in practice at a round's start).
            rises = sum(later > earlier for earlier, later in zip(order, order[1:]))
            assert rises <= max(2, 0.05 * len(order)), order[:20]
            assert order[0] >= sorted(order, reverse=True)[min(4, len(order) - 1)]
        assert row["judgements_used"]["human"] > 0 and row["judgements_used"]["judge"] > 0
        assert row["leakage"] == 0, result["leakage"]
    assert result["leakage"] == {"eval_prompt_pairs": 0, "oracle_judgements": 0, "non_model_targets": 0}
    # Every training target is a model's own answer (a loop-round generation), never the oracle's answer text
    # standing in for one: each chosen generation was written by the teacher or a student.
    chosen = Generation.objects.filter(pk__in=PreferencePair.objects.filter(snapshot__project=world["project"])
                                       .values("chosen_id"))
    assert set(chosen.values_list("origin", flat=True)) == {"loop"}
    assert LoopRound.objects.filter(project=world["project"], status="succeeded").count() == 2
