"""The generation socket: relays job progress to researchers and sends the recent jobs on connect."""
from webapp.generation import events, selectors
from webapp.projects.live import ProjectSocket
from webapp.projects.models import Role


class GenerationSocket(ProjectSocket):
    needed_role = Role.RESEARCHER

    def groups_for(self, project, **kwargs):
        return [events.group(project.pk)]

    def snapshot(self, project, **kwargs):
        jobs = selectors.jobs_for(project=project)[:20]
        return {"event": "generation.snapshot", "jobs": [events.progress_message(job) for job in jobs]}
