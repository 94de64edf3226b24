"""Training pages: the run list (live), the launch form per method (from ml.config; presets and
clones prefill it), the run page (live charts, cancel/resume), metric histories as JSON, and the
comparison of several runs. Researchers and admins only: runs spend GPU time."""
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from ml.config import METHODS, ConfigError, config_from_dict
from webapp.job_views import job_action_view
from webapp.projects.models import Role
from webapp.projects.permissions import project_view
from webapp.training import checkpoint_evals, guardrails, presets, selectors, services
from webapp.training.forms import CONFIG_PREFIX, RunForm
from webapp.training.models import Method, RunPreset, TrainingRun
from webapp.training.monitor import DEFAULT_SAMPLE_SIZE, detectable_drop

RUNS_PER_PAGE = 50


def _run(project, run_id) -> TrainingRun:
    return get_object_or_404(TrainingRun.objects.select_related("student", "snapshot"), project=project, id=run_id)


@project_view(Role.RESEARCHER)
def runs_list(request, project):
    page = Paginator(selectors.runs_for(project=project), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    context = {"project": project, "role": request.role, "runs": page, "page": page,
               "methods": Method.choices, "presets": selectors.presets_for(project=project)}
    return render(request, "training/list.html", context)


def _launch_source(request, project) -> tuple[str, dict, TrainingRun | None]:
    """(method, config, cloned run) from ?method=, ?preset=<id> or ?clone=<run id>."""
    if request.GET.get("clone"):
        run = _run(project, request.GET["clone"])
        return run.method, run.config, run
    if request.GET.get("preset"):
        preset = get_object_or_404(RunPreset, project=project, id=request.GET["preset"])
        return preset.method, preset.config, None
    method = request.GET.get("method") or request.POST.get("method") or "dpo"
    if method not in METHODS:
        raise Http404(f"Unknown method {method!r}.")
    return method, {}, None


@project_view(Role.RESEARCHER)
def run_new(request, project):
    method, config, clone = _launch_source(request, project)
    initial = {k: getattr(clone, k) for k in ("snapshot", "student", "teacher", "teacher_sft", "teacher_dpo",
                                              "report_to")} if clone else {}
    form = RunForm(request.POST or None, project=project, method=method, config=config, initial=initial)
    if request.method == "POST" and "save_preset" in request.POST:
        return _save_preset(request, project, form)
    if request.method == "POST" and "size_to_models" in request.POST:
        return _sized(request, project, form, clone)
    if request.method == "POST" and form.is_valid():
        try:
            run = _launch(request, project, form, clone)
            return redirect("training_run", slug=project.slug, run_id=run.id)
        except (ConfigError, ValidationError) as exc:
            _form_errors(form, exc)
    return _render_new(request, project, form, clone)


def _sized(request, project, form, clone):
    """The form again, its hyperparameters sized to the chosen student and snapshot (presets.py)."""
    form.is_valid()  # reads the chosen inputs; the config fields are about to be replaced anyway
    data = form.cleaned_data
    student, snapshot = data.get("student"), data.get("snapshot")
    if student is None or snapshot is None:
        messages.error(request, "Pick a student and a snapshot first: the sizes follow from them.")
        return _render_new(request, project, form, clone)
    config = presets.sized_config(form.method, student_params=student.parameter_count, pair_count=snapshot.pair_count)
    initial = {k: data.get(k) for k in ("name", "snapshot", "student", "teacher", "teacher_sft", "teacher_dpo",
                                        "report_to")}
    messages.info(request, f"Hyperparameters sized to {student.name} ({student.parameter_count or 'unknown'} parameters) "
                           f"and {snapshot.pair_count} pairs; check them, then launch.")
    return _render_new(request, project, RunForm(project=project, method=form.method, config=config, initial=initial), clone)


def _render_new(request, project, form, clone=None):
    context = {"project": project, "role": request.role, "form": form, "method": form.method, "clone": clone,
               "methods": Method.choices, "presets": selectors.presets_for(project=project),
               "required": list(services.required_teachers(form.method, config_from_dict(form.method, {})))}
    return render(request, "training/new.html", context, status=400 if form.errors else 200)


@transaction.atomic  # the run is enqueued on commit, so its evaluation settings are in place first
def _launch(request, project, form, clone):
    data = form.cleaned_data
    run = services.run_create(
        project=project, created_by=request.user, method=form.method, config=data["config"], name=data["name"],
        snapshot=data["snapshot"], student=data["student"], teacher=data["teacher"],
        teacher_sft=data["teacher_sft"], teacher_dpo=data["teacher_dpo"], cloned_from=clone,
        report_to=data.get("report_to", ""))
    checkpoint_evals.run_eval_settings_set(run=run, prompt_set=data["eval_prompt_set"], every=data["eval_every_steps"] or 0,
                                           sample_size=data["eval_sample_size"] or DEFAULT_SAMPLE_SIZE,
                                           judge=data["eval_judge"] or "likelihood")
    return run


def _form_errors(form, exc):
    if isinstance(exc, ConfigError):
        name = CONFIG_PREFIX + exc.field if exc.field and CONFIG_PREFIX + exc.field in form.fields else None
        form.add_error(name, str(exc))
        return
    for field, errors in getattr(exc, "message_dict", {None: exc.messages}).items():
        form.add_error(field if field in form.fields else None, errors)


def _save_preset(request, project, form):
    form.is_valid()  # only the config part matters for a preset
    name = request.POST.get("preset_name", "").strip()
    if "config" not in form.cleaned_data or not name:
        messages.error(request, "Give the preset a name and fix the highlighted hyperparameters first.")
        return _render_new(request, project, form)
    preset = services.preset_save(project=project, created_by=request.user, name=name, method=form.method,
                                  config=form.cleaned_data["config"])
    messages.success(request, f"Saved preset “{preset.name}” ({preset.get_method_display()}).")
    return redirect(f"/p/{project.slug}/training/new/?preset={preset.id}")


@project_view(Role.RESEARCHER)
def run_detail(request, project, run_id):
    run = _run(project, run_id)
    context = {"project": project, "role": request.role, "run": run, "checkpoints": run.checkpoints.all(),
               "versions": run.model_versions.all(), "collapse": guardrails.run_collapse(run=run),
               "detectable_drop_points": f"{100 * detectable_drop(run.eval_sample_size):.0f}",
               "tracker_links": selectors.tracker_links(run=run)}
    return render(request, "training/run.html", context)


run_cancel = job_action_view(TrainingRun, lambda run: services.run_cancel(run=run), url_kwarg="run_id", back="training_run",
                             done="Cancel requested for {job.name}.")
run_resume = job_action_view(TrainingRun, lambda run: services.run_resume(run=run), url_kwarg="run_id", back="training_run",
                             done="{job.name} queued to resume.")


@project_view(Role.RESEARCHER)
def run_points(request, project, run_id):
    run = _run(project, run_id)
    after = int(request.GET.get("after", -1)) if request.GET.get("after", "").lstrip("-").isdigit() else -1
    return JsonResponse({"run": {"id": run.id, "name": run.name, "method": run.method, "status": run.status},
                         "points": selectors.run_points(run=run, after_step=after)})


@project_view(Role.RESEARCHER)
def run_monitor(request, project, run_id):
    """Checkpoint evaluations and the teacher-hacking verdict, for the run page's catch-up."""
    return JsonResponse(checkpoint_evals.run_monitor(run=_run(project, run_id)))


@require_POST
@project_view(Role.RESEARCHER)
def checkpoint_register(request, project, run_id, step):
    checkpoint = get_object_or_404(_run(project, run_id).checkpoints, step=step)
    version = checkpoint_evals.checkpoint_register(checkpoint=checkpoint)
    messages.success(request, f"Checkpoint at step {step} is model version “{version.name}”.")
    return redirect("training_run", slug=project.slug, run_id=run_id)


@project_view(Role.RESEARCHER)
def runs_compare(request, project):
    ids = [int(i) for i in request.GET.getlist("runs") if i.isdigit()]
    runs = sorted(selectors.runs_for(project=project).filter(id__in=ids).select_related("teacher"),
                  key=lambda run: ids.index(run.id))  # in the order picked
    context = {"project": project, "role": request.role, "runs": runs,
               "all_runs": selectors.runs_for(project=project)[:200], "selected": set(ids),
               "config_rows": selectors.config_diff(runs) if runs else [],
               "snapshot_rows": selectors.snapshot_diff(runs)}
    return render(request, "training/compare.html", context)
