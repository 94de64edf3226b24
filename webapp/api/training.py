"""API: training runs (launch with the launch page's form, so ml.config's dataclasses validate the
config exactly as in the browser; status, metrics, cancel, resume, rerun) and checkpoints (list,
register as a model version). Researchers and admins, as the training pages."""
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from ninja import Router, Schema

from ml.config import METHODS, ConfigError
from webapp import json_bounds
from webapp.api.access import ApiError, Launched, Page, error, form_errors, job_out, page_of, project_for
from webapp.api.catalog import model_version_out
from webapp.projects.models import Role
from webapp.training import checkpoint_evals, selectors, services
from webapp.training.forms import CONFIG_PREFIX, RunForm
from webapp.training.models import TrainingRun
from webapp.training.views import _launch

router = Router(tags=["training"])
INPUTS = ("snapshot", "student", "teacher", "teacher_sft", "teacher_dpo")
MAX_POINTS = 2000


def _url(project, run) -> str:
    return f"/api/v1/projects/{project.slug}/runs/{run.pk}"


def run_out(project, run) -> dict:
    return {**job_out(run, _url(project, run)), "name": run.name, "method": run.method, "config": run.config,
            **{name: getattr(run, f"{name}_id") for name in INPUTS}, "cloned_from": run.cloned_from_id,
            "model_versions": list(run.model_versions.values_list("pk", flat=True)),
            "report_to": run.report_to, "metrics_url": f"{_url(project, run)}/metrics"}


class RunIn(Schema):
    """The launch form's fields; any other field the form has (added with the page) is accepted too."""
    method: str
    snapshot: int
    student: int
    teacher: int | None = None
    teacher_sft: int | None = None
    teacher_dpo: int | None = None
    name: str = ""
    config: dict = {}
    eval_prompt_set: int | None = None
    eval_every_steps: int | None = None
    eval_sample_size: int | None = None
    eval_judge: str | None = None
    report_to: str | None = None  # experiment trackers for this run (blank: the deployment's DISTILLERY_REPORT_TO)


def _flat(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + str(key)] = value
    return out


def _config_loc(field: str) -> list:
    return ["config", *field[len(CONFIG_PREFIX):].split(".")] if field.startswith(CONFIG_PREFIX) else [field]


def _launch_form(request, project, data: dict, clone=None) -> TrainingRun:
    """The launch page's RunForm bound to the body (config keys as its cfg:<dotted> fields), then its launch."""
    method = data["method"]
    if method not in METHODS:
        raise error(422, f"Unknown method {method[:40]!r}; one of {', '.join(METHODS)}.", loc=("body", "method"))
    config = data.get("config") or {}
    fields = {CONFIG_PREFIX + k: v for k, v in _flat(config).items() if v is not None}
    # The page posts every setting with its default filled in; a body names only what it changes.
    defaults = {name: field.initial for name, field in RunForm(project=project, method=method).fields.items()
                if name.startswith(CONFIG_PREFIX) and field.initial is not None}
    inputs = {k: v for k, v in data.items() if k not in ("config", "method") and v is not None}
    form = RunForm({**inputs, **defaults, **fields}, project=project, method=method)
    unknown = [k for k in [*fields, *inputs] if k not in form.fields]
    if unknown:
        raise ApiError(422, [{"loc": ["body", *_config_loc(k)], "msg": f"{method} has no such setting.", "type": "unknown"}
                             for k in unknown])
    if not form.is_valid():
        raise form_errors(form, rename=_config_loc)
    try:
        return _launch(request, project, form, clone)
    except ConfigError as exc:
        raise error(422, str(exc), loc=("body", *_config_loc(CONFIG_PREFIX + (exc.field or "")))) from None
    except ValidationError as exc:
        raise ApiError(422, [{"loc": ["body", field], "msg": m, "type": "invalid"}
                             for field, ms in getattr(exc, "message_dict", {"__all__": exc.messages}).items()
                             for m in ms]) from None


@router.get("/projects/{slug}/runs", response=Page)
def run_list(request, slug: str):
    project = project_for(request, slug, Role.RESEARCHER)
    return page_of(request, selectors.runs_for(project=project), lambda run: run_out(project, run))


@router.post("/projects/{slug}/runs", response={202: Launched})
def run_launch(request, slug: str, body: RunIn):
    """Launch a run: `config` holds the method's hyperparameters (ml.config; ADPA+ nests `dckd` and
    `adpa`), missing ones take their defaults. Answers the queued run; poll its URL, or its metrics."""
    project = project_for(request, slug, Role.RESEARCHER)
    extra = {k: v for k, v in json_bounds.loads(request.body).items() if k not in RunIn.model_fields}
    run = _launch_form(request, project, {**extra, **body.dict()})
    return 202, {"job": run_out(project, run), "url": _url(project, run)}


def _run(project, run_id) -> TrainingRun:
    return get_object_or_404(TrainingRun, project=project, pk=run_id)


@router.get("/projects/{slug}/runs/{run_id}")
def run_detail(request, slug: str, run_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    run = _run(project, run_id)
    return {**run_out(project, run), "log_tail": run.log_tail[-4000:], "monitor": checkpoint_evals.run_monitor(run=run)}


@router.get("/projects/{slug}/runs/{run_id}/metrics")
def run_metrics(request, slug: str, run_id: int, after: int = -1):
    """Metric points after step `after` (at most 2000 a call; `next_after` continues)."""
    project = project_for(request, slug, Role.RESEARCHER)
    run = _run(project, run_id)
    points = selectors.run_points(run=run, after_step=max(-1, min(after, 2**31)))[:MAX_POINTS]
    return {"run": run.pk, "status": run.status, "step": run.step, "total_steps": run.total_steps, "points": points,
            "next_after": points[-1]["step"] if len(points) == MAX_POINTS else None}


@router.post("/projects/{slug}/runs/{run_id}/cancel", response={202: Launched})
def run_cancel(request, slug: str, run_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    run = services.run_cancel(run=_run(project, run_id))
    return 202, {"job": run_out(project, run), "url": _url(project, run)}


@router.post("/projects/{slug}/runs/{run_id}/resume", response={202: Launched})
def run_resume(request, slug: str, run_id: int):
    """A failed or cancelled run continues from its last checkpoint."""
    project = project_for(request, slug, Role.RESEARCHER)
    run = services.run_resume(run=_run(project, run_id))
    return 202, {"job": run_out(project, run), "url": _url(project, run)}


@router.post("/projects/{slug}/runs/{run_id}/rerun", response={202: Launched})
def run_rerun(request, slug: str, run_id: int):
    """A new run with the same method, inputs and config (the page's Clone, launched as it is)."""
    project = project_for(request, slug, Role.RESEARCHER)
    old = _run(project, run_id)
    data = {"method": old.method, "config": old.config, **{name: getattr(old, f"{name}_id") for name in INPUTS},
            "eval_prompt_set": old.eval_prompt_set_id, "eval_every_steps": old.eval_every_steps,
            "eval_sample_size": old.eval_sample_size, "eval_judge": old.eval_judge, "report_to": old.report_to}
    run = _launch_form(request, project, data, clone=old)
    return 202, {"job": run_out(project, run), "url": _url(project, run)}


@router.get("/projects/{slug}/runs/{run_id}/checkpoints", tags=["checkpoints"], response=Page)
def checkpoint_list(request, slug: str, run_id: int):
    project = project_for(request, slug, Role.RESEARCHER)
    run = _run(project, run_id)
    return page_of(request, run.checkpoints.order_by("step"), lambda c: {
        "step": c.step, "is_final": c.is_final, "metrics": c.metrics, "created_at": c.created_at,
        "register_url": f"{_url(project, run)}/checkpoints/{c.step}/register"})


@router.post("/projects/{slug}/runs/{run_id}/checkpoints/{step}/register", tags=["checkpoints"], response={201: dict})
def checkpoint_register(request, slug: str, run_id: int, step: int):
    """The checkpoint as a student model version (lineage: the run, its snapshot, its student); twice = the same."""
    project = project_for(request, slug, Role.RESEARCHER)
    checkpoint = get_object_or_404(_run(project, run_id).checkpoints, step=step)
    return 201, model_version_out(checkpoint_evals.checkpoint_register(checkpoint=checkpoint))
