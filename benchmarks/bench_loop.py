"""The closed loop end to end, as a user runs it, on the demo world: a real ASGI server, a real gpu
and default Celery worker, the embedded PostgreSQL and Redis. Per round:

1. a loop round on the gpu worker: the current student and the teacher answer fresh training prompts;
   every pair whose answers differ is an open comparison, ordered by teacher-student disagreement;
2. simulated annotators (ml.demo.annotator, `--noise` error rate, `--overlap` people per item) work
   the queue through the real HTTP annotation API (next / submit, with leases and overlap);
3. a teacher-judge job on the gpu worker judges the round's comparisons;
4. a snapshot is frozen (humans + teacher-judge, majority; never eval prompts, evaluation
   comparisons or oracle verdicts) and a training run on the gpu worker trains the student on it
   (SFT on the chosen answers, from the previous round's student);
5. an evaluation on the held-out prompts (teacher-judge and oracle) scores the base student, every
   round's student and the teacher.

It reports per round: judgements used, oracle accuracy with a 95% Wilson CI, win rate against the
teacher (teacher-judge and oracle verdicts) with bootstrap CIs, and the leakage count: pairs on
held-out prompts + oracle verdicts among the pairs' judgements + scored prompts in the lineage's
training data (must be 0). A baseline beside it: sequence-level KD (SFT on the teacher's greedy
answers to the same prompts, no judgements) from the base student with the same steps. The oracle
is an instrument: it scores the evaluation and plays the simulated people; no training target ever
comes from it (every chosen answer is a model's generation).

    python -m benchmarks.bench_loop --demo-dir var/demo [--rounds 2] [--prompts 1000] [--write-doc]

The slow test tests/workers/test_loop.py runs the same driver (LoopDriver) on a smaller setting.
"""
import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC_START, DOC_END = "<!-- loop-benchmark:start -->", "<!-- loop-benchmark:end -->"
TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class LoopSettings:
    rounds: int = 2
    prompts_per_round: int = 1000    # fresh training prompts per round
    eval_prompts: int = 200          # held-out prompts each evaluation scores
    annotators: int = 3
    overlap: int = 2                 # people per comparison
    noise: float = 0.1               # the simulated annotators' error rate
    judge: str = "likelihood"        # teacher-judge method for the judge job and the evaluations
    source_filter: str = "both"      # snapshot sources: humans and the teacher-judge
    # Picked on the demo world: lr 3e-3 (the build's) or a few dozen pairs make the student worse.
    train: dict = field(default_factory=lambda: {"learning_rate": 1e-3, "batch_size": 16, "grad_accum": 1,
                                                 "num_epochs": 4, "max_length": 64, "warmup_ratio": 0.1})
    seed: int = 0
    baseline: bool = True            # also train sequence-level KD on the teacher's answers (no judgements)
    timeout_s: float = 1800.0


def wilson(hits: int, n: int) -> tuple[float, float, float]:
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    p, z = hits / n, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, centre - half, centre + half


class LoopDriver:
    """Drives the loop against a running server and workers that share this process's database."""

    def __init__(self, *, base_url: str, project, researcher, annotators: list, teacher, base_student, prompt_set,
                 eval_set, settings: LoopSettings, log=print):
        self.base_url, self.project, self.researcher, self.people = base_url, project, researcher, annotators
        self.teacher, self.base, self.prompt_set, self.eval_set = teacher, base_student, prompt_set, eval_set
        self.settings, self.log = settings, log
        self.students = [base_student]
        self.rows = []

    # -- waiting on the workers ------------------------------------------------------------------
    def wait(self, model, pk: int, what: str):
        deadline = time.monotonic() + self.settings.timeout_s
        while time.monotonic() < deadline:
            row = model.objects.get(pk=pk)
            if row.status in TERMINAL:
                if row.status != "succeeded":
                    raise RuntimeError(f"{what} {row.status}: {row.error}")
                return row
            time.sleep(0.5)
        raise TimeoutError(f"{what} did not finish within {self.settings.timeout_s}s")

    # -- people, through the HTTP API ------------------------------------------------------------
    def _client(self, user):
        """An httpx client with a session made directly in the database (the server's cached_db
        sessions fall back to it), so no password round trip and no cache needed here."""
        import httpx
        from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
        from django.contrib.sessions.backends.db import SessionStore

        session = SessionStore()
        session[SESSION_KEY], session[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        client = httpx.Client(base_url=self.base_url, timeout=60)
        client.cookies.set("sessionid", session.session_key)
        client.get("/login/")
        client.headers.update({"X-CSRFToken": client.cookies["csrftoken"], "Referer": self.base_url + "/"})
        return client

    def annotate(self, round_number: int) -> dict:
        """Every simulated annotator works the queue (next → judge → submit) until it has nothing
        for them; returns {"judgements", "errors", "priorities": [per annotator, in the order seen]}."""
        from django.db import connection

        from ml.demo.annotator import SimulatedAnnotator

        api = f"/p/{self.project.slug}/annotate/api/"
        results = [None] * len(self.people)

        def work(index, user):
            simulated = SimulatedAnnotator(error_rate=self.settings.noise, seed=1000 * round_number + index)
            client, seen, errors, judged = self._client(user), [], [], 0
            try:
                while True:
                    item = client.get(api + "next").json()["comparison"]
                    if item is None:
                        break
                    a, b = item["candidates"]
                    verdict = simulated.judge(item["prompt"]["text"], a["text"], b["text"])
                    ranking = {"a": [[a["id"]], [b["id"]]], "b": [[b["id"]], [a["id"]]],
                               "tie": [[a["id"], b["id"]]]}[verdict]
                    response = client.post(api + "submit", json={"comparison": item["id"], "ranking": ranking,
                                                                  "time_spent_ms": 1500})
                    if response.status_code >= 300:
                        errors.append(f"{response.status_code} {response.text[:120]}")
                        if len(errors) > 20:
                            break
                        continue
                    judged += 1
                    seen.append(item["id"])
            finally:
                client.close()
                connection.close()
            results[index] = {"judged": judged, "errors": errors, "seen": seen}

        threads = [threading.Thread(target=work, args=(i, u)) for i, u in enumerate(self.people)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if any(r is None for r in results):
            raise RuntimeError("a simulated annotator crashed (see the thread's traceback above)")
        return {"judgements": sum(r["judged"] for r in results), "errors": [e for r in results for e in r["errors"]],
                "seen": [r["seen"] for r in results]}

    # -- one round --------------------------------------------------------------------------------
    def run_round(self, number: int) -> dict:
        from webapp.annotation import judging, snapshots
        from webapp.annotation.models import Comparison, JudgeJob
        from webapp.evaluation.loop_services import loop_round_start
        from webapp.evaluation.models import LoopRound
        started = time.monotonic()
        student = self.students[-1]
        loop_round = loop_round_start(project=self.project, student=student, teacher=self.teacher,
                                      prompt_set=self.prompt_set, prompt_count=self.settings.prompts_per_round,
                                      created_by=self.researcher)
        loop_round = self.wait(LoopRound, loop_round.pk, f"round {number}")
        comparisons = Comparison.objects.filter(loop_round=loop_round)
        comparisons.update(required_annotations=self.settings.overlap)
        self.log(f"round {number}: {loop_round.stats.get('comparisons')} comparisons "
                 f"(student {student.name} oracle {loop_round.stats.get('student_oracle_accuracy')})")
        people = self.annotate(number)
        self.log(f"round {number}: {people['judgements']} human judgements, {len(people['errors'])} API errors")
        job = judging.judge_job_create(project=self.project, created_by=self.researcher, teacher=self.teacher,
                                       method=self.settings.judge, comparisons=comparisons)
        self.wait(JudgeJob, job.pk, f"judge job of round {number}")
        snapshot = snapshots.snapshot_freeze(project=self.project, name=f"round-{number}", source_filter=self.settings.source_filter,
                                             created_by=self.researcher)
        trained = self.train(snapshot, parent=student, name=f"loop-r{number}")
        self.students.append(trained)
        row = {"round": number, "student": trained.name, "comparisons": loop_round.stats.get("comparisons"),
               "human_judgements": people["judgements"], "api_errors": len(people["errors"]),
               "queue_orders": people["seen"], "snapshot": snapshot.name, "pairs": snapshot.pair_count,
               "sources": snapshot.sources, "agreement": {k: snapshot.agreement.get(k) for k in ("alpha", "mean_kappa")},
               "judgements_used": judgements_used(snapshot.sources),
               "seconds": round(time.monotonic() - started, 1), "loop_round": loop_round.pk}
        self.rows.append(row)
        return row

    def train(self, snapshot, *, parent, name: str, target: str = "chosen"):
        from webapp.catalog.models import ModelVersion
        from webapp.training.models import TrainingRun
        from webapp.training.services import run_create

        config = {**self.settings.train, "target": target, "seed": self.settings.seed, "max_new_tokens": 16}
        run = run_create(project=self.project, created_by=self.researcher, method="sft", config=config, snapshot=snapshot,
                         student=parent, teacher=self.teacher if target == "teacher" else None, name=f"{name}-run")
        run = self.wait(TrainingRun, run.pk, f"training run {name}")
        trained = ModelVersion.objects.filter(produced_by=run).order_by("-id").first()
        ModelVersion.objects.filter(pk=trained.pk).update(name=name)
        trained.refresh_from_db()
        return trained

    def baseline(self):
        """Sequence-level KD: SFT on the teacher's greedy answers to the prompts the rounds used, from
        the base student, the same steps per epoch as the last round's run. No judgement is used: the
        run reads only the snapshot's prompts (target=teacher regenerates the answers)."""
        from webapp.annotation.models import PreferenceSnapshot

        last = PreferenceSnapshot.objects.filter(project=self.project).order_by("-created_at").first()
        return self.train(last, parent=self.base, name="seq-kd-baseline", target="teacher")

    def evaluate(self, models: list) -> dict:
        from webapp.evaluation import integrity, services
        from webapp.evaluation.models import Evaluation, EvaluationOutput

        evaluation = services.evaluation_create(
            project=self.project, name=f"loop eval {len(self.rows)}", teacher=self.teacher, model_versions=models,
            prompt_set=self.eval_set, judges=["teacher", "oracle"], created_by=self.researcher,
            config={"split": "eval", "prompt_limit": self.settings.eval_prompts, "teacher_judge": self.settings.judge,
                    "max_new_tokens": 32, "n_boot": 1000})
        evaluation = self.wait(Evaluation, evaluation.pk, "evaluation")
        for _ in range(60):  # the win-rate refresh runs on the default worker right after the job
            evaluation.refresh_from_db()
            if evaluation.results.get("versus_teacher"):
                break
            time.sleep(0.5)
        contamination = integrity.evaluation_contamination(evaluation=evaluation)
        scores = {}
        for mv in [self.teacher, *models]:
            correct = list(EvaluationOutput.objects.filter(evaluation=evaluation, model_version=mv,
                                                           oracle_correct__isnull=False).values_list("oracle_correct", flat=True))
            acc, low, high = wilson(sum(correct), len(correct))
            versus = evaluation.results.get("versus_teacher", {}).get(str(mv.id), {})
            scores[mv.name] = {"oracle": {"acc": acc, "low": low, "high": high, "n": len(correct)},
                               "versus_teacher": versus, "contamination": contamination[mv.id]["overlap"]}
        return {"evaluation": evaluation.pk, "scores": scores}

    def leakage(self) -> dict:
        """Pairs on held-out prompts, oracle verdicts behind any pair, pairs whose chosen or rejected
        text is not a model's generation: over every snapshot of the project."""
        from webapp.annotation.models import Judgement, PreferencePair

        pairs = PreferencePair.objects.filter(snapshot__project=self.project)
        judgement_ids = {j for p in pairs.values_list("provenance", flat=True) for j in p.get("judgements", [])}
        return {"eval_prompt_pairs": pairs.filter(prompt__split="eval").count(),
                "oracle_judgements": Judgement.objects.filter(pk__in=judgement_ids, source="oracle").count(),
                "non_model_targets": pairs.exclude(chosen__model_version__isnull=False, rejected__model_version__isnull=False).count()}

    def run(self) -> dict:
        for number in range(1, self.settings.rounds + 1):
            self.run_round(number)
        models = list(self.students)
        if self.settings.baseline:
            models.append(self.baseline())
        evaluation = self.evaluate(models)
        leakage = self.leakage()
        for row in self.rows:
            score = evaluation["scores"][row["student"]]
            row.update(oracle=score["oracle"], versus_teacher=score["versus_teacher"],
                       leakage=sum(leakage.values()) + score["contamination"])
        return {"rows": self.rows, "evaluation": evaluation, "leakage": leakage, "settings": asdict(self.settings)}


# -- the world and the processes --------------------------------------------------------------------

def demo_world(demo_dir: Path, *, eval_prompts: int):
    """The demo project as bootstrap_demo would make it, plus annotator accounts: teacher and base
    student from the demo build, the demo prompts (train and eval splits, with family and answer)."""
    from django.contrib.auth import get_user_model

    from webapp.catalog.models import PromptSet
    from webapp.catalog.services import model_version_register, prompts_bulk_create
    from webapp.projects.services import member_set_role, project_create

    User = get_user_model()
    researcher = User.objects.create_user(username="loop-researcher", password=None)
    project = project_create(name="Loop bench", created_by=researcher, guidelines="Prefer the correct answer.")
    member_set_role(project=project, user=researcher, role="researcher")
    teacher = model_version_register(project=project, name="demo-teacher", role="teacher", stage="sft",
                                     source=str(demo_dir / "teacher"))
    base = model_version_register(project=project, name="demo-student", role="student", source=str(demo_dir / "student"))
    prompt_set = PromptSet.objects.create(project=project, name="demo-tasks")
    rows = []
    for split in ("train", "eval"):
        for line in (demo_dir / "prompts" / f"{split}.jsonl").read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                rows.append({"text": record["prompt"], "split": split, "tags": [record["family"]],
                             "metadata": {"family": record["family"], "answer": record["answer"]}})
    prompts_bulk_create(prompt_set=prompt_set, rows=rows)
    return {"project": project, "researcher": researcher, "teacher": teacher, "base": base, "prompt_set": prompt_set}


def people(project, n: int) -> list:
    from django.contrib.auth import get_user_model

    from webapp.projects.services import member_set_role

    users = []
    for i in range(n):
        user = get_user_model().objects.create_user(username=f"sim-annotator-{i}", password=None)
        member_set_role(project=project, user=user, role="annotator")
        users.append(user)
    return users


def judgements_used(sources: dict) -> dict:
    """{"human": n, "judge": n} from a snapshot's recorded sources."""
    return {"human": sources.get("human", {}).get("judgements", 0),
            "judge": sum(n for origin, ids in sources.items() if origin != "human" for n in ids.values())}


def fmt_ci(value, low, high) -> str:
    return "—" if value is None or value != value else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def table(result: dict) -> str:
    scores = result["evaluation"]["scores"]
    lines = ["| model | round | judgements used (human + judge) | pairs | oracle accuracy [95% CI] | win rate vs teacher, teacher-judge [95% CI] | win rate vs teacher, oracle [95% CI] | leakage |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    by_student = {row["student"]: row for row in result["rows"]}
    for name, score in scores.items():
        row = by_student.get(name, {})
        o, v = score["oracle"], score["versus_teacher"]
        vt, vo = v.get("teacher"), v.get("oracle")
        used = f"{row['judgements_used']['human']} + {row['judgements_used']['judge']}" if row else "—"
        lines.append(f"| {name} | {row.get('round', '—')} | {used} | {row.get('pairs', '—')} | {fmt_ci(o['acc'], o['low'], o['high'])} | "
                     f"{fmt_ci(vt['rate'], vt['low'], vt['high']) if vt else '—'} | {fmt_ci(vo['rate'], vo['low'], vo['high']) if vo else '—'} | "
                     f"{score['contamination'] + (sum(result['leakage'].values()) if row else 0)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo-dir", type=Path, default=REPO / "var" / "demo")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=1000, help="fresh training prompts per round")
    parser.add_argument("--eval-prompts", type=int, default=200)
    parser.add_argument("--annotators", type=int, default=3)
    parser.add_argument("--overlap", type=int, default=2)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--write-doc", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    settings = LoopSettings(rounds=args.rounds, prompts_per_round=args.prompts, eval_prompts=args.eval_prompts,
                            annotators=args.annotators, overlap=args.overlap, noise=args.noise, baseline=not args.no_baseline)
    settings.train.update(num_epochs=args.epochs, learning_rate=args.lr)

    base = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    sys.path.insert(0, str(REPO))
    from tests.conftest import start_asgi_server, start_celery_worker
    from webapp.embedded import start_postgres, start_redis

    db_url, pg = start_postgres(base / "pg", database="bench")
    redis_url, redis = start_redis(base / "redis", persist=False)
    env = dict(os.environ, DATABASE_URL=db_url, REDIS_URL=redis_url, DJANGO_SETTINGS_MODULE="webapp.settings",
               DISTILLERY_DATA_DIR=str(base / "data"), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               DISTILLERY_PASSWORD_HASHERS="django.contrib.auth.hashers.MD5PasswordHasher")
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    procs = []
    try:
        url, server = start_asgi_server(env, base / "daphne.log")
        procs = [server, start_celery_worker(env, "gpu", base / "gpu.log", "gpu"),
                 start_celery_worker(env, "default", base / "default.log", "default")]
        world = demo_world(args.demo_dir, eval_prompts=args.eval_prompts)
        eval_set = world["prompt_set"]
        driver = LoopDriver(base_url=url, project=world["project"], researcher=world["researcher"],
                            annotators=people(world["project"], settings.annotators), teacher=world["teacher"],
                            base_student=world["base"], prompt_set=world["prompt_set"], eval_set=eval_set,
                            settings=settings)
        started = time.monotonic()
        result = driver.run()
        result["seconds"] = round(time.monotonic() - started, 1)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except Exception:
                proc.kill()
        redis.terminate()
    text = table(result)
    print(text)
    print(json.dumps(result["leakage"]), f"{result['seconds']}s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    if args.write_doc:
        write_doc(result, text, argv if argv is not None else sys.argv[1:])
    return 0


def write_doc(result: dict, text: str, argv) -> None:
    doc = REPO / "docs" / "benchmarks.md"
    body = doc.read_text()
    s = result["settings"]
    block = (f"{DOC_START}\n`python -m benchmarks.bench_loop {' '.join(argv)}` ({result['seconds']} s; 2 CPU cores "
             f"shared with other work). {s['rounds']} rounds × {s['prompts_per_round']} fresh prompts, {s['annotators']} "
             f"simulated annotators ({s['noise']:.0%} noise, {s['overlap']} per comparison) through the HTTP API, teacher-judge "
             f"({s['judge']}) job, snapshot ({s['source_filter']}), SFT on chosen on the gpu worker, evaluation on "
             f"{s['eval_prompts']} held-out prompts. Leakage over every snapshot: {json.dumps(result['leakage'])}.\n\n"
             f"{text}\n{DOC_END}")
    if DOC_START in body:
        head, rest = body.split(DOC_START, 1)
        body = head + block + rest.split(DOC_END, 1)[1]
    else:
        body = body.rstrip() + "\n\n## The loop, end to end\n\n" + block + "\n"
    doc.write_text(body)


if __name__ == "__main__":
    raise SystemExit(main())
