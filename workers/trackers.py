"""The bridge from a training run to ml.trackers: which trackers it reports to (its own report_to,
else the deployment's DISTILLERY_REPORT_TO), what they are told (the method's config as params; the
run, its snapshot's hash and the models it starts from as tags, so a tracker run leads back to the
lineage) and where file-based trackers write (TRACKING_DIR/run-<id>). The links are stored on the
run as soon as the tracker runs open, so the run page links them while it trains."""
import contextlib
import dataclasses

from django.conf import settings

from ml import tracker_runs, trackers
from ml.config import config_to_dict
from webapp.training import services


def lineage_tags(run) -> dict:
    """Tags every tracker run carries: enough to find the Distillery run and what it trained on."""
    tags = {"distillery.run_id": run.id, "distillery.run": run.name, "distillery.project": run.project.slug,
            "method": run.method, "student": f"{run.student.name} ({run.student.source})"}
    if run.snapshot is not None:
        tags.update({"snapshot": run.snapshot.name, "snapshot_hash": run.snapshot.content_hash})
    for role in ("teacher", "teacher_sft", "teacher_dpo"):
        if (version := getattr(run, role)) is not None:
            tags[role] = f"{version.name} ({version.source or version.endpoint_url})"
    if run.cloned_from_id:
        tags["cloned_from"] = run.cloned_from_id
    if run.resume_from is not None:
        tags["resumed_at_step"] = run.resume_from.step
    return {k: str(v) for k, v in tags.items()}


def spec_for(run, config) -> trackers.TrackingSpec | None:
    names = services.run_report_to(run)
    if not names:
        return None
    return trackers.TrackingSpec(
        report_to=names, run_name=run.name, experiment=f"distillery-{run.project.slug}",
        log_dir=settings.TRACKING_DIR / f"run-{run.id}", params=config_to_dict(config), tags=lineage_tags(run),
        mlflow_tracking_uri=settings.MLFLOW_TRACKING_URI or (settings.TRACKING_DIR / "mlruns").as_uri(),
        mlflow_ui_url=settings.MLFLOW_UI_URL)


@contextlib.contextmanager
def tracked(run, config, hooks):
    """`hooks` with the run's trackers set (the recipe passes them to report_to), inside their runs."""
    spec = spec_for(run, config)
    if spec is None:
        yield hooks
        return
    on_links = lambda links: services.run_trackers_record(run_id=run.id, trackers=links)  # noqa: E731
    with tracker_runs.tracking(spec, on_links=on_links):
        yield dataclasses.replace(hooks, report_to=spec.report_to, run_name=spec.run_name)
