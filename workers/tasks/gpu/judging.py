"""The teacher-as-judge job on the gpu queue: load the teacher (and π_sft for the implicit reward),
judge each comparison with ml.judges (the generative judge sees both presentation orders), store
each verdict with its probability and the judge's identity, publish progress. A k-way comparison
is judged pair by pair and ranked by each candidate's mean win probability."""
from itertools import combinations

from celery import shared_task

from ml.judges import GenerativeJudge, ImplicitRewardJudge, JudgeItem, LikelihoodJudge, judge_pairs
from ml.modeling import load_model
from webapp.annotation import judging, services

CHUNK = 8  # comparisons per stored chunk


@shared_task(name="workers.tasks.gpu.judging.run_judge_job")
def run_judge_job(job_id: int) -> str:
    job = judging.judge_job_claim(job_id=job_id)
    if job is None:
        return "not claimed"
    try:
        judge = _judge(job)
        done = 0
        for start in range(0, len(job.comparison_ids), CHUNK):
            items = judging.judge_job_items(job=job, ids=job.comparison_ids[start:start + CHUNK])
            pairs = [(item, a, b) for item in items for a, b in combinations(range(len(item["candidates"])), 2)]
            verdicts = judge_pairs(judge, [JudgeItem(item["prompt"], item["candidates"][a][1], item["candidates"][b][1])
                                           for item, a, b in pairs])
            for item in items:
                mine = [(a, b, v) for (it, a, b), v in zip(pairs, verdicts) if it is item]
                _store(job, item, mine)
            done += len(job.comparison_ids[start:start + CHUNK])
            judging.judge_job_progress(job=job, done=done)
        judging.judge_job_finish(job=job)
        return "succeeded"
    except Exception as exc:  # the job page shows why instead of a job stuck in "running"
        judging.judge_job_finish(job=job, error=f"{type(exc).__name__}: {exc}")
        raise


def _judge(job):
    teacher = load_model(job.teacher.source, revision=job.teacher.revision or None)
    if job.method == "implicit_reward":
        reference = load_model(job.reference.source, revision=job.reference.revision or None)
        return ImplicitRewardJudge(teacher.model, reference.model, teacher.tokenizer, beta=job.beta)
    if job.method == "likelihood":
        return LikelihoodJudge(teacher.model, teacher.tokenizer)
    return GenerativeJudge(teacher.model, teacher.tokenizer)


def _store(job, item, verdicts) -> None:
    """Pairwise: P(a ≻ b) as is. k-way: rank candidates by mean P(win) over their pairs."""
    ids = [gid for gid, _ in item["candidates"]]
    details = {"identity": verdicts[0][2].judge, "order": verdicts[0][2].order,
               "pairs": [{"a": ids[a], "b": ids[b], "p_a_over_b": v.p_a_over_b, **v.details} for a, b, v in verdicts]}
    shown = [ids, ids[::-1]] if verdicts[0][2].order == "both" else ids
    if item["kind"] == "pairwise":
        services.teacher_judgement_record(comparison_id=item["comparison"], judge_name=job.judge_name, judge_model=job.teacher,
                                          probability=verdicts[0][2].p_a_over_b, ranking=[], details=details, shown_order=shown)
        return
    wins = {gid: [] for gid in ids}
    for a, b, v in verdicts:
        wins[ids[a]].append(v.p_a_over_b)
        wins[ids[b]].append(1 - v.p_a_over_b)
    scores = {gid: round(sum(p) / len(p), 6) for gid, p in wins.items()}
    ranking = [[g for g in ids if scores[g] == s] for s in sorted(set(scores.values()), reverse=True)]
    services.teacher_judgement_record(comparison_id=item["comparison"], judge_name=job.judge_name, judge_model=job.teacher,
                                      probability=None, ranking=ranking, details={**details, "scores": scores}, shown_order=shown)
