"""The closed loop end to end, as a user runs it, on the real demo world (the default build a
newcomer's `make run` makes, shared with the other tests through the cached `demo_world_dir`): two
rounds of benchmarks.bench_loop.LoopDriver against a real ASGI server and real gpu and default
Celery workers, with the benchmark's own settings. Simulated annotators (10% noise, two per
comparison) judge through the HTTP API, which hands out each round's comparisons largest
teacher-student disagreement first; a teacher-judge job runs on the gpu worker; a snapshot, an
SFT-on-chosen run on the worker, and one evaluation on every held-out prompt at the end. The
round-2 student beats the round-1 student, which beats the base, on oracle accuracy; no held-out
prompt, oracle verdict or oracle answer reaches any training data.

A smaller world built in the test (teacher 500 / student 150 SFT steps, 480 prompts a round) was
tried first and was flaky: round 1 beat the base by +0.004 to +0.019, and once fell below it."""
import pytest
from benchmarks.bench_loop import LoopDriver, LoopSettings, demo_world, people
from webapp.annotation.models import Comparison, PreferencePair
from webapp.evaluation.models import LoopRound
from webapp.generation.models import Generation

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _rank_correlation(priorities: list) -> float:
    """Spearman's ρ between the position an item was handed out at and its rank by priority
    (1.0 = exactly largest first; ties keep their hand-out order)."""
    n = len(priorities)
    if n < 3:
        return 1.0
    rank = {i: r for r, i in enumerate(sorted(range(n), key=lambda i: (-priorities[i], i)))}
    return 1 - 6 * sum((i - rank[i]) ** 2 for i in range(n)) / (n * (n * n - 1))


@pytest.mark.timeout(2400)
def test_two_rounds_of_the_loop_make_a_better_student_each_round(demo_world_dir, asgi_server, celery_workers):
    world = demo_world(demo_world_dir, eval_prompts=545)
    settings = LoopSettings(eval_prompts=545, baseline=False, timeout_s=1800)  # the benchmark's defaults
    driver = LoopDriver(base_url=asgi_server, project=world["project"], researcher=world["researcher"],
                        annotators=people(world["project"], settings.annotators), teacher=world["teacher"],
                        base_student=world["base"], prompt_set=world["prompt_set"], eval_set=world["prompt_set"],
                        settings=settings)
    result = driver.run()
    scores = result["evaluation"]["scores"]
    base, r1, r2 = (scores[name]["oracle"]["acc"] for name in ("demo-student", "loop-r1", "loop-r2"))
    print(f"oracle accuracy: base {base:.3f}, round 1 {r1:.3f}, round 2 {r2:.3f}")
    assert r2 > r1 > base, (base, r1, r2)

    for row in result["rows"]:
        # People judged through the API, and each of them was handed the round's items by disagreement.
        assert row["api_errors"] == 0 and row["human_judgements"] >= settings.overlap * row["comparisons"] * 0.9
        for seen in row["queue_orders"]:
            by_id = dict(Comparison.objects.filter(pk__in=seen).values_list("pk", "priority"))
            order = [by_id[i] for i in seen]
            # Largest disagreement first. Not strictly: two people asking at the same instant race for
            # the same slots and one is handed a neighbouring item (measured: 23 local swaps in 418), so
            # the check is the rank correlation between hand-out position and priority.
            assert _rank_correlation(order) >= 0.95, order[:20]
        assert row["judgements_used"]["human"] > 0 and row["judgements_used"]["judge"] > 0
        assert row["leakage"] == 0, result["leakage"]
    assert result["leakage"] == {"eval_prompt_pairs": 0, "oracle_judgements": 0, "non_model_targets": 0}
    # Every training target is a model's own answer (a loop-round generation), never the oracle's answer text
    # standing in for one: each chosen generation was written by the teacher or a student.
    chosen = Generation.objects.filter(pk__in=PreferencePair.objects.filter(snapshot__project=world["project"])
                                       .values("chosen_id"))
    assert set(chosen.values_list("origin", flat=True)) == {"loop"}
    assert LoopRound.objects.filter(project=world["project"], status="succeeded").count() == 2
