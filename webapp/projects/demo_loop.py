""""Run the demo loop": one button that walks a project through the whole loop once, with the same
services a researcher's clicks use: generate (teacher and base student answer training prompts),
build teacher-vs-student comparisons, have the teacher judge them (human judgements already made
count too), freeze a snapshot, train a DCKD student with hyperparameters sized to it
(training/presets.py), and evaluate it against the base student. A step machine, not a waiting task:
the default-queue task `workers.tasks.demo_loop.advance` looks at the current step's job, starts the
next step once it finished, and comes back a couple of seconds later; the state (step, job ids,
status) lives in the shared Redis cache, so the project home shows progress at every step."""
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.utils import timezone

from webapp.annotation import judging, snapshots
from webapp.annotation.models import Comparison, JudgeJob
from webapp.annotation.services import comparisons_build
from webapp.catalog.models import ModelRole
from webapp.celery import enqueue
from webapp.evaluation.models import Evaluation
from webapp.evaluation.services import evaluation_create
from webapp.generation.models import Generation, GenerationJob
from webapp.generation.services import generation_job_create
from webapp.lifecycle import JobStatus
from webapp.training import presets
from webapp.training.models import TrainingRun
from webapp.training.services import run_create

TASK = "workers.tasks.demo_loop.advance"
STEPS = ("generate", "judge", "train", "evaluate")  # compare and snapshot are instant, done between them
TITLES = {"generate": "Teacher and student answer training prompts", "judge": "Teacher-judge the comparisons",
          "train": "Train a DCKD student on the snapshot", "evaluate": "Evaluate it against the base student"}
# Measured on the demo world (docs/benchmarks.md, "The demo loop"): every training prompt (1,549) with
# k=2 gives ~2,400 teacher-judged pairs, enough for the sized DCKD run to beat the base student; 48
# prompts (77 pairs) or 400 made it worse. 200 held-out prompts make the gain visible past the noise.
TRAIN_PROMPTS, SAMPLES, EVAL_PROMPTS, MAX_NEW_TOKENS = 2000, 2, 200, 32
FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


def _cache():
    return caches["shared"]


def _key(project_id: int) -> str:
    return f"demo-loop:{project_id}"


def demo_loop_state(*, project_id: int) -> dict | None:
    return _cache().get(_key(project_id))


def _save(project_id: int, state: dict) -> dict:
    _cache().set(_key(project_id), state, timeout=7 * 24 * 3600)
    return state


def demo_loop_inputs(*, project) -> dict | None:
    """The base teacher, the base student and a prompt set with train and eval prompts, or None."""
    versions = project.model_versions.filter(produced_by__isnull=True).exclude(source__startswith="import:")
    teacher = versions.filter(role=ModelRole.TEACHER).exclude(stage="dpo").order_by("created_at").first()
    student = versions.filter(role=ModelRole.STUDENT).order_by("created_at").first()
    prompt_set = next((s for s in project.prompt_sets.exclude(name__startswith="imported: ").order_by("id")
                       if s.prompts.filter(split="train").exists() and s.prompts.filter(split="eval").exists()), None)
    if not (teacher and student and prompt_set):
        return None
    return {"teacher": teacher, "student": student, "prompt_set": prompt_set}


def demo_loop_start(*, project, created_by) -> dict:
    state = demo_loop_state(project_id=project.pk)
    if state and state["status"] == "running":
        raise ValidationError("The demo loop is already running.")
    inputs = demo_loop_inputs(project=project)
    if inputs is None:
        raise ValidationError("The demo loop needs a teacher, a student and a prompt set with train and eval prompts.")
    job = generation_job_create(project=project, created_by=created_by, model_versions=[inputs["teacher"], inputs["student"]],
                                prompt_set=inputs["prompt_set"], split="train", prompt_limit=TRAIN_PROMPTS, k=SAMPLES,
                                temperature=1.0, max_new_tokens=MAX_NEW_TOKENS)
    state = {"status": "running", "step": "generate", "started_at": timezone.now().isoformat(), "error": "",
             "user": created_by.pk if created_by else None, "notes": [],
             "ids": {"teacher": inputs["teacher"].pk, "student": inputs["student"].pk, "prompt_set": inputs["prompt_set"].pk,
                     "generation_job": job.pk}}
    _save(project.pk, state)
    enqueue(TASK, project.pk)
    return state


def _fail(project_id, state, error: str) -> bool:
    state.update(status="failed", error=error[:2000])
    _save(project_id, state)
    return False


def demo_loop_advance(*, project_id: int) -> bool:
    """One look at the current step; starts the next when it finished. True while there is more to do."""
    from webapp.projects.models import Project

    state = demo_loop_state(project_id=project_id)
    if not state or state["status"] != "running":
        return False
    project, ids = Project.objects.get(pk=project_id), state["ids"]
    model, key = {"generate": (GenerationJob, "generation_job"), "judge": (JudgeJob, "judge_job"),
                  "train": (TrainingRun, "run"), "evaluate": (Evaluation, "evaluation")}[state["step"]]
    job = model.objects.get(pk=ids[key])
    if job.status not in FINISHED:
        return True
    if job.status != JobStatus.SUCCEEDED:
        return _fail(project_id, state, f"{TITLES[state['step']]}: {job.status}. {job.error}")
    try:
        _next(project, state, job)
    except ValidationError as exc:
        return _fail(project_id, state, " ".join(exc.messages))
    _save(project_id, state)
    return state["status"] == "running"


def _next(project, state, job) -> None:
    ids, user = state["ids"], None
    if state["user"]:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.filter(pk=state["user"]).first()
    teacher = project.model_versions.get(pk=ids["teacher"])
    if state["step"] == "generate":
        made = comparisons_build(project=project, generations=Generation.objects.filter(job=job), mode="teacher_student")
        ids["comparisons"] = [c.pk for c in made]
        state["notes"].append(f"{len(made)} teacher-vs-student comparisons built")
        judge = judging.judge_job_create(project=project, created_by=user, teacher=teacher, method="likelihood",
                                         comparisons=Comparison.objects.filter(pk__in=ids["comparisons"]))
        ids["judge_job"], state["step"] = judge.pk, "judge"
    elif state["step"] == "judge":
        snapshot = snapshots.snapshot_freeze(project=project, name=f"demo-loop-{timezone.now():%Y%m%d-%H%M%S}",
                                             source_filter="both", created_by=user)
        state["notes"].append(f"snapshot {snapshot.name}: {snapshot.pair_count} pairs")
        student = project.model_versions.get(pk=ids["student"])
        config = presets.sized_config("dckd", student_params=student.parameter_count, pair_count=snapshot.pair_count)
        run = run_create(project=project, created_by=user, method="dckd", config=config, snapshot=snapshot, student=student,
                         teacher_sft=teacher, name=f"demo loop DCKD ({snapshot.pair_count} pairs)")
        ids.update(snapshot=snapshot.pk, run=run.pk)
        state["step"] = "train"
    elif state["step"] == "train":
        trained = job.model_versions.filter(role=ModelRole.STUDENT).order_by("-id").first()  # not π_dpo
        if trained is None:
            raise ValidationError("The run finished without a model version.")
        base = project.model_versions.get(pk=ids["student"])
        evaluation = evaluation_create(project=project, name=f"demo loop: {trained.name} vs {base.name}", teacher=teacher,
                                       model_versions=[base, trained], prompt_set=project.prompt_sets.get(pk=ids["prompt_set"]),
                                       judges=["teacher", "oracle"], created_by=user,
                                       config={"split": "eval", "prompt_limit": EVAL_PROMPTS, "teacher_judge": "likelihood",
                                               "max_new_tokens": MAX_NEW_TOKENS})
        ids.update(trained=trained.pk, evaluation=evaluation.pk)
        state["step"] = "evaluate"
    else:
        state.update(status="succeeded", finished_at=timezone.now().isoformat())


def demo_loop_view(state: dict | None) -> list[dict]:
    """The steps for the page: title, done / current / waiting."""
    if not state:
        return []
    order = list(STEPS)
    at = len(order) if state["status"] == "succeeded" else order.index(state["step"])
    return [{"title": TITLES[s], "done": i < at, "current": i == at and state["status"] == "running",
             "failed": i == at and state["status"] == "failed"} for i, s in enumerate(order)]
