"""Live events of generation jobs. One group per project, `generation.project.<id>` (webapp/live_groups.py); messages:
    {"event": "generation.progress", "job": id, "status": str, "done": int, "total": int, "error": str}
    {"event": "generation.snapshot", "jobs": [<progress message>, ...]}  (sent on connect)"""
from webapp import live_groups
from webapp.projects.live import publish


group = live_groups.generation_project


def progress_message(job) -> dict:
    return {"event": "generation.progress", "job": job.pk, "status": job.status, "done": job.progress_done,
            "total": job.progress_total, "error": job.error}


def job_progress(job) -> None:
    publish(group(job.project_id), progress_message(job))
