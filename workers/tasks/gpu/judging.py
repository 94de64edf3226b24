"""The teacher-as-judge job on the gpu queue: load the teacher (and π_sft for the implicit reward),
judge each comparison with ml.judges (the generative judge sees both presentation orders), store
each chunk's verdicts with their probabilities and the judge's identity in one batched upsert
(services.teacher_judgements_record: a rerun replaces them), publish progress. A k-way comparison
is judged pair by pair and ranked by ml.pipeline.rank_by_mean_win. The lifecycle (claim, heartbeat,
cancel, finish) is webapp.lifecycle's. An endpoint teacher (workers.endpoints) judges generatively
through its server (both orders, ml.endpoints.judge); an answer it gives that cannot be read stores
no verdict for that comparison and is counted on the job (`unparseable`), never taken for a tie. A
generative judge asks the job's rubric (template, answer labels); a verdict below the job's
answer-mass threshold is stored with its "low_answer_mass" mark and counted (`low_answer_mass`)."""
from itertools import combinations

from celery import shared_task

from ml.judges import GenerativeJudge, ImplicitRewardJudge, JudgeItem, LikelihoodJudge, judge_pairs, verdict_outcome
from ml.modeling import load_model
from ml.pipeline import rank_by_mean_win
from webapp.annotation import judging, services
from webapp.lifecycle import stop_unless_go
from workers import endpoints

CHUNK = 8  # comparisons per stored chunk


@shared_task(name="workers.tasks.gpu.judging.run_judge_job")
def run_judge_job(job_id: int) -> str:
    return judging.JOBS.run(job_id, _judge_all)


def _judge_all(job, attempt: int) -> None:
    judge, done, unparseable, low = _judge(job), 0, 0, 0
    try:
        for start in range(0, len(job.comparison_ids), CHUNK):
            items = judging.judge_job_items(job=job, ids=job.comparison_ids[start:start + CHUNK])
            pairs = [(item, a, b) for item in items for a, b in combinations(range(len(item["candidates"])), 2)]
            verdicts = judge_pairs(judge, [JudgeItem(item["prompt"], item["candidates"][a][1], item["candidates"][b][1])
                                           for item, a, b in pairs])
            stored = []
            for item in items:
                mine = [(a, b, v) for (it, a, b), v in zip(pairs, verdicts) if it is item]
                if any(v.details.get("unparseable") for _, _, v in mine):
                    unparseable += 1  # no verdict: the comparison stays open for people
                    continue
                low += any(v.details.get("low_answer_mass") for _, _, v in mine)  # stored, marked and counted
                stored.append(_verdict(item, mine))
            services.teacher_judgements_record(judge_name=job.judge_name, judge_model=job.teacher, verdicts=stored)
            done += len(job.comparison_ids[start:start + CHUNK])
            stop_unless_go(judging.judge_job_progress(job=job, attempt=attempt, done=done, unparseable=unparseable,
                                                      low_answer_mass=low))
    finally:
        endpoints.close(judge)  # an endpoint judge's client; in-worker judges hold nothing to close


def _judge(job):
    """The job's judge; the generative one asks the job's rubric (template, labels, answer-mass mark)."""
    rubric = judging.judge_job_rubric(job) if job.method == "generative" else {}
    if endpoints.is_endpoint(job.teacher) or endpoints.is_endpoint(job.reference):
        version = job.teacher if endpoints.is_endpoint(job.teacher) else job.reference
        return endpoints.judge(version, method=job.method, **rubric)
    teacher = load_model(job.teacher.source, revision=job.teacher.revision or None)
    if job.method == "implicit_reward":
        reference = load_model(job.reference.source, revision=job.reference.revision or None)
        return ImplicitRewardJudge(teacher.model, reference.model, teacher.tokenizer, beta=job.beta,
                                   sft_tokenizer=reference.tokenizer)
    if job.method == "likelihood":
        return LikelihoodJudge(teacher.model, teacher.tokenizer)
    return GenerativeJudge(teacher.model, teacher.tokenizer, rubric["template"], rubric["labels"],
                           warn_below=rubric["warn_below"])


def _verdict(item, verdicts) -> dict:
    """teacher_judgements_record's verdict for one comparison. Pairwise: P(a ≻ b) as is. k-way: the
    ranking by mean P(win) (ml.pipeline)."""
    ids = [gid for gid, _ in item["candidates"]]
    details = {"identity": verdicts[0][2].judge, "order": verdicts[0][2].order,
               "pairs": [{"a": ids[a], "b": ids[b], "p_a_over_b": v.p_a_over_b, **v.details} for a, b, v in verdicts]}
    order = verdicts[0][2].order  # "ab" or "ba": an endpoint judge read only that order
    shown = [ids, ids[::-1]] if order == "both" else ids[::-1] if order == "ba" else ids
    if item["kind"] == "pairwise":
        return {"comparison_id": item["comparison"], "probability": verdicts[0][2].p_a_over_b,
                "outcome": verdict_outcome(verdicts[0][2]), "ranking": [], "details": details, "shown_order": shown}
    scores, ranking = rank_by_mean_win(ids, [(a, b, v.p_a_over_b) for a, b, v in verdicts])
    return {"comparison_id": item["comparison"], "probability": None, "ranking": ranking, "details": {**details, "scores": scores},
            "shown_order": shown}
